"""The built-in dimensions, declared apart from their measurements.

Declaring a dimension (name, default bounds, weight, tier, what it reads and requires,
the least and most its measure gives) needs no torch, so ingest checks a job's profile and
rules at submission without loading torch, OpenCV or transformers. The scorer, the one
service that measures, registers each measure under its dimension's name when it starts
(`services.scorer.dimensions.measures`) and measures with these very declarations.

The bounds here are the defaults, written once: a profile that lists a dimension with `{}`
keeps them. The generic profile's are calibrated on scikit-image's photographs (astronaut,
coffee, chelsea, camera, rocket) and LocalGenerator paintings, which all pass, against
degraded copies, which fail (tests/scorer/test_calibration.py has the figures).
"""

from functools import partial

from services.common.quality.dimensions import Bounds, Dimension, register_dimension

# A built-in dimension's measure is registered by the scorer, not declared here.
BuiltIn = partial(Dimension, measure=None)

TIER_ONE = (
    # Laplacian variance (luma levels²): photos 400-1500, 512² paintings 190-10000;
    # Gaussian blur of radius 2 brings them under 11, radius 5 under 2.5.
    BuiltIn(
        name="sharpness",
        bounds=Bounds(minimum=20.0),
        failure_hint="image looks blurred",
        reads="luma",
        tier=1, lowest=0.0,
    ),
    # Immerkær sigma (luma levels): photos 2-4.7, 512² paintings 0.3-6.4; Gaussian noise of
    # sigma 0.1 reads 15.7-17.2. Dense fine texture (grass: 11.8) reads as noise too.
    BuiltIn(
        name="noise",
        bounds=Bounds(maximum=10.0),
        failure_hint="image is noisy or grainy",
        reads="luma",
        tier=1, lowest=0.0,
    ),
    # Block-seam step over mid-block step: photos 0.99-1.12, paintings 0.75-1.39; JPEG
    # quality 75 up to 1.22, quality 30 up to 1.55, quality 10 from 1.74, quality 2 from 2.2.
    BuiltIn(
        name="blockiness",
        bounds=Bounds(maximum=1.7),
        failure_hint="image shows 8×8 compression blocks",
        weight=0.5,
        reads="luma",
        tier=1, lowest=0.0,
    ),
    # Mean luma in [0, 1]: photos 0.24-0.51, blown-out copies 0.92-0.99.
    BuiltIn(
        name="exposure",
        bounds=Bounds(minimum=0.08, maximum=0.92),
        failure_hint="image is under- or overexposed",
        weight=0.5,
        reads="luma",
        tier=1, lowest=0.0, highest=1.0,
    ),
    # Share of luma <= 5 or >= 250: photos up to 0.15 (the astronaut's dark suit), blown-out
    # copies 0.55-0.94, black frames 1.
    BuiltIn(
        name="clipping",
        bounds=Bounds(maximum=0.35),
        failure_hint="too many blown highlights or crushed shadows",
        weight=0.5,
        reads="luma",
        tier=1, lowest=0.0, highest=1.0,
    ),
    # Luma standard deviation in [0, 1]: photos 0.12-0.29, paintings from 0.078; blank 0.
    BuiltIn(
        name="blank",
        bounds=Bounds(minimum=0.02),
        failure_hint="image is blank or a uniform frame",
        weight=0.0,
        reads="luma",
        tier=1, lowest=0.0,
    ),
    # False contours over gentle steps: photos and paintings up to 0.02, a smooth gradient
    # posterised to 16 levels 1.
    BuiltIn(
        name="banding",
        bounds=Bounds(maximum=0.3),
        failure_hint="smooth gradients are posterised into bands",
        weight=0.5,
        reads="luma",
        tier=1, lowest=0.0, highest=1.0,
    ),
    # Relative size error: only when a size is requested.
    BuiltIn(
        name="size",
        bounds=Bounds(maximum=0.05),
        failure_hint="image is not the requested size",
        weight=0.0,
        reads="luma",
        waived_without=frozenset({"requested_size"}),
        tier=1, lowest=0.0,
    ),
    # |ln aspect error|: only when a size is requested.
    BuiltIn(
        name="aspect",
        bounds=Bounds(maximum=0.01),
        failure_hint="image does not have the requested aspect ratio",
        weight=0.0,
        reads="luma",
        waived_without=frozenset({"requested_size"}),
        tier=1, lowest=0.0,
    ),
)

# CLIP cosine similarity; measured when a model is configured, else reported unavailable.
PROMPT_ALIGNMENT = BuiltIn(
    name="prompt_alignment",
    bounds=Bounds(minimum=0.2),
    failure_hint="the image does not match its prompt",
    weight=2.0,
    reads="color",
    requires=frozenset({"clip_model", "prompt"}),
    tier=1,
)

TIER_TWO = (
    BuiltIn(
        name="faces",
        bounds=Bounds(minimum=1, maximum=1),
        failure_hint="the image should show exactly one face",
        weight=0.0,
        reads="luma",
        tier=2, lowest=0.0,
    ),
    BuiltIn(
        name="face_size",
        bounds=Bounds(minimum=0.02, maximum=0.6),
        failure_hint="the face is too small or too close",
        weight=0.5,
        reads="luma",
        tier=2, lowest=0.0,
    ),
    BuiltIn(
        name="face_position",
        bounds=Bounds(maximum=0.7),
        failure_hint="the face is too far from the centre of the frame",
        weight=0.5,
        reads="luma",
        unmeasurable_hint="no face was found",
        tier=2, lowest=0.0,
    ),
    BuiltIn(
        name="eyes_open",
        bounds=Bounds(minimum=2),
        failure_hint="two open eyes were not found in the face",
        weight=0.0,
        reads="luma",
        tier=2, lowest=0.0,
    ),
    BuiltIn(
        name="identity",
        bounds=Bounds(maximum=0.6),
        failure_hint="the face is not the reference photo's person",
        weight=1.0,
        reads="color",
        requires=frozenset({"face_model"}),
        waived_without=frozenset({"reference"}),
        unmeasurable_hint="the image or the reference photo does not show exactly one face",
        over_frames="max",  # every frame must show the reference's person
        # Expensive: the face embedding takes 85 ms a face on a CPU core, the detection the
        # face dimensions share 33 ms; a candidate whose face fails Tier 2 never pays for it.
        tier=3, lowest=0.0,
    ),
    BuiltIn(
        name="skin_tone",
        bounds=Bounds(maximum=1.0),
        failure_hint="the skin's lightness or colour differs from the reference photo's",
        weight=0.5,
        reads="color",
        waived_without=frozenset({"reference"}),
        unmeasurable_hint="no face was found in the image or in the reference photo",
        tier=2, lowest=0.0,
    ),
    BuiltIn(
        name="lighting",
        bounds=Bounds(maximum=1.0),
        failure_hint="the face is under- or overexposed or half in harsh shadow",
        weight=0.5,
        reads="luma",
        unmeasurable_hint="no face was found",
        tier=2, lowest=0.0,
    ),
    BuiltIn(
        name="background",
        bounds=Bounds(maximum=0.25),
        failure_hint="the background around the subject is cluttered",
        weight=0.5,
        reads="luma",
        tier=2, lowest=0.0, highest=1.0,
    ),
)

# Against a subject (a person or product of the tenant's photos, JobSpec.subject): identity
# and skin_tone above compare with the subject's centroid and photos instead of a reference
# photo; these two need a subject and are unavailable without one.
SUBJECT_DIMENSIONS = (
    # With two or more faces in the frame, how many are another person's (their embedding
    # 0.6 or more from the subject's centroid); one face reads 0, identity judges it. The
    # subject with a stranger reads 1, the subject twice 0 (faces rejects both).
    BuiltIn(
        name="second_person",
        bounds=Bounds(maximum=0),
        failure_hint="another person's face is in the frame beside the subject's",
        weight=0.0,
        reads="color",
        requires=frozenset({"face_model", "subject"}),
        unmeasurable_hint="the subject has no face to tell another person's from (a product)",
        over_frames="max",
        tier=2, lowest=0.0,
    ),
    # ORB features of the image matched with those of each of the subject's photos, counted
    # where one perspective (a RANSAC homography) agrees, up to 100: the coffee cup pasted on
    # another backdrop 355-476, unrelated photographs 4-8 (chance matches), a mirrored or
    # heavily restyled product under 10.
    BuiltIn(
        name="product_match",
        bounds=Bounds(minimum=15),
        failure_hint="the subject's product is not found in the image",
        weight=1.0,
        reads="luma",
        requires=frozenset({"subject"}),
        scale=15.0,
        unmeasurable_hint="the subject is a person, not a product",
        tier=3, lowest=0.0, highest=100.0,
    ),
)

# NudeNet's highest score of a moderated class: benign sample photos at most 0.12.
NSFW = BuiltIn(
    name="nsfw",
    bounds=Bounds(maximum=0.5),
    failure_hint="the image shows content this deployment moderates",
    weight=0.0,
    reads="color",
    requires=frozenset({"moderation_model"}),
    over_frames="max",  # one flagged frame flags the clip
    tier=2, lowest=0.0, highest=1.0,
)

# Clips (animated images): measured on their frames. Tier-1 dimensions of a clip are its
# frames' mean; these look at single frames and at how frames follow one another.
CLIP_DIMENSIONS = (
    BuiltIn(
        name="frames",
        bounds=Bounds(minimum=2),
        failure_hint="a clip needs more than one frame",
        weight=0.0,
        reads="luma",
        tier=1, lowest=1.0,
    ),
    BuiltIn(
        name="frame_sharpness",
        bounds=Bounds(minimum=30.0),
        failure_hint="at least one frame is blurred",
        reads="luma",
        over_frames="min",
        tier=1, lowest=0.0,
    ),
    BuiltIn(
        name="flicker",
        bounds=Bounds(maximum=0.03),
        failure_hint="brightness jumps from one frame to the next",
        reads="luma",
        over_frames="max",
        tier=1, lowest=0.0,
    ),
)

# Video clips (MP4, WebM): first the file (container, nothing decoded), compared with the
# job's video block; then every frame in order, small (frozen and black frames, cuts, flicker,
# movement); the other dimensions measure sampled frames. A still has none of these to show.
FRAMES_UNREADABLE = "the candidate is not a video clip, or its frames do not decode"
CONTAINER = (
    BuiltIn(
        name="container",
        bounds=Bounds(minimum=1),
        failure_hint="the file is not a playable video clip (MP4 or WebM of H.264, HEVC, VP9 or AV1)",
        weight=0.0,
        reads="container",
        unmeasurable_hint="the candidate is not a video clip",
        tier=1, lowest=0.0, highest=1.0,
    ),
    BuiltIn(
        name="duration",
        bounds=Bounds(minimum=0.9),
        failure_hint="the clip is shorter than asked",
        weight=0.0,
        reads="container",
        waived_without=frozenset({"requested_clip"}),
        unmeasurable_hint="the candidate is not a video clip",
        tier=1, lowest=0.0,
    ),
    BuiltIn(
        name="frame_rate",
        bounds=Bounds(maximum=0.05),
        failure_hint="the clip's frame rate is not the one asked",
        weight=0.0,
        reads="container",
        waived_without=frozenset({"requested_clip", "requested_fps"}),
        unmeasurable_hint="the candidate is not a video clip",
        tier=1, lowest=0.0,
    ),
    BuiltIn(
        name="clip_aspect",
        bounds=Bounds(maximum=0.05),
        failure_hint="the clip does not have the aspect ratio asked",
        weight=0.0,
        reads="container",
        waived_without=frozenset({"requested_clip"}),
        unmeasurable_hint="the candidate is not a video clip",
        tier=1, lowest=0.0,
    ),
    BuiltIn(
        name="resolution",
        bounds=Bounds(minimum=0.95),
        failure_hint="the clip is smaller than the resolution asked",
        weight=0.0,
        reads="container",
        waived_without=frozenset({"requested_clip"}),
        unmeasurable_hint="the candidate is not a video clip",
        tier=1, lowest=0.0,
    ),
)

TEMPORAL = (
    BuiltIn(
        name="frozen",
        bounds=Bounds(maximum=0.2),
        failure_hint="the picture stops moving: consecutive frames are near-identical",
        weight=0.0,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        tier=1, lowest=0.0, highest=1.0,
    ),
    BuiltIn(
        name="black_frames",
        bounds=Bounds(maximum=0.0),
        failure_hint="the clip has black frames",
        weight=0.0,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        tier=1, lowest=0.0, highest=1.0,
    ),
    BuiltIn(
        name="scene_cuts",
        bounds=Bounds(maximum=0.0),
        failure_hint="the picture cuts to another scene",
        weight=0.0,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        # Measured with the other temporal dimensions but judged last (`tiers`), so that a
        # clip that cuts to another person is also told that the face changed.
        tier=2, lowest=0.0,
    ),
    BuiltIn(
        name="temporal_flicker",
        bounds=Bounds(maximum=0.02),
        failure_hint="brightness flickers from one frame to the next",
        weight=0.5,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        tier=1, lowest=0.0, highest=1.0,
    ),
    BuiltIn(
        name="movement",
        bounds=Bounds(minimum=0.002),
        failure_hint="nothing moves: a still passed off as a clip",
        weight=0.0,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        tier=1, lowest=0.0,
    ),
)

FACE_CONSISTENCY = BuiltIn(
    name="face_consistency",
    bounds=Bounds(maximum=0.6),
    failure_hint="the face changes into another person's during the clip",
    weight=0.0,
    reads="color",
    requires=frozenset({"face_model"}),
    over_frames="max",  # the frame whose face is farthest from the clip's first face
    tier=3, lowest=0.0,
)

BUILT_IN = (*TIER_ONE, PROMPT_ALIGNMENT, *TIER_TWO, *SUBJECT_DIMENSIONS, NSFW, *CLIP_DIMENSIONS, *CONTAINER, *TEMPORAL, FACE_CONSISTENCY)

for _dimension in BUILT_IN:
    register_dimension(_dimension)
