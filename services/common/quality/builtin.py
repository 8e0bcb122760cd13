"""The built-in dimensions, declared apart from their measurements.

Declaring a dimension (name, default bounds, weight, tier, what it reads and requires,
the least and most its measure gives) needs no torch; its measure is named by family
(`tier1`, `faces`, `clip`, …), and the scorer, the one service that measures, attaches each
family's code at start-up (`attach_measures`); it is imported on first use. So ingest checks a job's profile and rules at submission without loading torch, OpenCV or transformers, and the scorer
measures with the very same declarations.
"""

from functools import partial

from services.common.quality.dimensions import Bounds, Dimension, MeasureIn, register_dimension

# The families of measures, named, never imported here: the scorer attaches their code.
MEASURE_FAMILIES = ("tier1", "faces", "portrait", "moderation", "clip", "motion", "video")
TIER1, FACES, PORTRAIT, MODERATION, CLIP, MOTION, VIDEO = (partial(MeasureIn, family) for family in MEASURE_FAMILIES)

TIER_ONE = (
    Dimension(
        name="sharpness",
        measure=TIER1("laplacian_variance"),
        bounds=Bounds(minimum=20.0),
        failure_hint="image looks blurred",
        reads="luma",
        tier=1, lowest=0.0,
    ),
    Dimension(
        name="noise",
        measure=TIER1("noise_sigma"),
        bounds=Bounds(maximum=10.0),
        failure_hint="image is noisy or grainy",
        reads="luma",
        tier=1, lowest=0.0,
    ),
    Dimension(
        name="blockiness",
        measure=TIER1("block_step_ratio"),
        bounds=Bounds(maximum=1.7),
        failure_hint="image shows 8×8 compression blocks",
        weight=0.5,
        reads="luma",
        tier=1, lowest=0.0,
    ),
    Dimension(
        name="exposure",
        measure=TIER1("mean_luma"),
        bounds=Bounds(minimum=0.08, maximum=0.92),
        failure_hint="image is under- or overexposed",
        weight=0.5,
        reads="luma",
        tier=1, lowest=0.0, highest=1.0,
    ),
    Dimension(
        name="clipping",
        measure=TIER1("clipped_share"),
        bounds=Bounds(maximum=0.35),
        failure_hint="too many blown highlights or crushed shadows",
        weight=0.5,
        reads="luma",
        tier=1, lowest=0.0, highest=1.0,
    ),
    Dimension(
        name="blank",
        measure=TIER1("luma_std"),
        bounds=Bounds(minimum=0.02),
        failure_hint="image is blank or a uniform frame",
        weight=0.0,
        reads="luma",
        tier=1, lowest=0.0,
    ),
    Dimension(
        name="banding",
        measure=TIER1("banding_share"),
        bounds=Bounds(maximum=0.3),
        failure_hint="smooth gradients are posterised into bands",
        weight=0.5,
        reads="luma",
        tier=1, lowest=0.0, highest=1.0,
    ),
    Dimension(
        name="size",
        measure=TIER1("size_error"),
        bounds=Bounds(maximum=0.05),
        failure_hint="image is not the requested size",
        weight=0.0,
        reads="luma",
        waived_without=frozenset({"requested_size"}),
        tier=1, lowest=0.0,
    ),
    Dimension(
        name="aspect",
        measure=TIER1("aspect_error"),
        bounds=Bounds(maximum=0.01),
        failure_hint="image does not have the requested aspect ratio",
        weight=0.0,
        reads="luma",
        waived_without=frozenset({"requested_size"}),
        tier=1, lowest=0.0,
    ),
)

PROMPT_ALIGNMENT = Dimension(
    name="prompt_alignment",
    measure=CLIP("prompt_similarity"),
    bounds=Bounds(minimum=0.2),
    failure_hint="the image does not match its prompt",
    weight=2.0,
    reads="color",
    requires=frozenset({"clip_model", "prompt"}),
    tier=1,
)

TIER_TWO = (
    Dimension(
        name="faces",
        measure=FACES("face_count"),
        bounds=Bounds(minimum=1, maximum=1),
        failure_hint="the image should show exactly one face",
        weight=0.0,
        reads="luma",
        tier=2, lowest=0.0,
    ),
    Dimension(
        name="face_size",
        measure=FACES("face_area_share"),
        bounds=Bounds(minimum=0.02, maximum=0.6),
        failure_hint="the face is too small or too close",
        weight=0.5,
        reads="luma",
        tier=2, lowest=0.0,
    ),
    Dimension(
        name="face_position",
        measure=FACES("face_offset"),
        bounds=Bounds(maximum=0.7),
        failure_hint="the face is too far from the centre of the frame",
        weight=0.5,
        reads="luma",
        unmeasurable_hint="no face was found",
        tier=2, lowest=0.0,
    ),
    Dimension(
        name="eyes_open",
        measure=FACES("open_eyes"),
        bounds=Bounds(minimum=2),
        failure_hint="two open eyes were not found in the face",
        weight=0.0,
        reads="luma",
        tier=2, lowest=0.0,
    ),
    Dimension(
        name="identity",
        measure=FACES("identity_distance"),
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
    Dimension(
        name="skin_tone",
        measure=PORTRAIT("skin_tone_stops"),
        bounds=Bounds(maximum=1.0),
        failure_hint="the skin's lightness or colour differs from the reference photo's",
        weight=0.5,
        reads="color",
        waived_without=frozenset({"reference"}),
        unmeasurable_hint="no face was found in the image or in the reference photo",
        tier=2, lowest=0.0,
    ),
    Dimension(
        name="lighting",
        measure=PORTRAIT("lighting_stops"),
        bounds=Bounds(maximum=1.0),
        failure_hint="the face is under- or overexposed or half in harsh shadow",
        weight=0.5,
        reads="luma",
        unmeasurable_hint="no face was found",
        tier=2, lowest=0.0,
    ),
    Dimension(
        name="background",
        measure=PORTRAIT("background_clutter"),
        bounds=Bounds(maximum=0.25),
        failure_hint="the background around the subject is cluttered",
        weight=0.5,
        reads="luma",
        tier=2, lowest=0.0, highest=1.0,
    ),
)

NSFW = Dimension(
    name="nsfw",
    measure=MODERATION("nsfw_score"),
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
    Dimension(
        name="frames",
        measure=MOTION("frame_count"),
        bounds=Bounds(minimum=2),
        failure_hint="a clip needs more than one frame",
        weight=0.0,
        reads="luma",
        tier=1, lowest=1.0,
    ),
    Dimension(
        name="frame_sharpness",
        measure=TIER1("laplacian_variance"),
        bounds=Bounds(minimum=30.0),
        failure_hint="at least one frame is blurred",
        reads="luma",
        over_frames="min",
        tier=1, lowest=0.0,
    ),
    Dimension(
        name="flicker",
        measure=MOTION("brightness_jump"),
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
    Dimension(
        name="container",
        measure=VIDEO("readable_container"),
        bounds=Bounds(minimum=1),
        failure_hint="the file is not a playable video clip (MP4 or WebM of H.264, HEVC, VP9 or AV1)",
        weight=0.0,
        reads="container",
        unmeasurable_hint="the candidate is not a video clip",
        tier=1, lowest=0.0, highest=1.0,
    ),
    Dimension(
        name="duration",
        measure=VIDEO("duration_ratio"),
        bounds=Bounds(minimum=0.9),
        failure_hint="the clip is shorter than asked",
        weight=0.0,
        reads="container",
        waived_without=frozenset({"requested_clip"}),
        unmeasurable_hint="the candidate is not a video clip",
        tier=1, lowest=0.0,
    ),
    Dimension(
        name="frame_rate",
        measure=VIDEO("frame_rate_error"),
        bounds=Bounds(maximum=0.05),
        failure_hint="the clip's frame rate is not the one asked",
        weight=0.0,
        reads="container",
        waived_without=frozenset({"requested_clip", "requested_fps"}),
        unmeasurable_hint="the candidate is not a video clip",
        tier=1, lowest=0.0,
    ),
    Dimension(
        name="clip_aspect",
        measure=VIDEO("aspect_error"),
        bounds=Bounds(maximum=0.05),
        failure_hint="the clip does not have the aspect ratio asked",
        weight=0.0,
        reads="container",
        waived_without=frozenset({"requested_clip"}),
        unmeasurable_hint="the candidate is not a video clip",
        tier=1, lowest=0.0,
    ),
    Dimension(
        name="resolution",
        measure=VIDEO("resolution_ratio"),
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
    Dimension(
        name="frozen",
        measure=VIDEO("longest_frozen_share"),
        bounds=Bounds(maximum=0.2),
        failure_hint="the picture stops moving: consecutive frames are near-identical",
        weight=0.0,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        tier=1, lowest=0.0, highest=1.0,
    ),
    Dimension(
        name="black_frames",
        measure=VIDEO("black_frame_share"),
        bounds=Bounds(maximum=0.0),
        failure_hint="the clip has black frames",
        weight=0.0,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        tier=1, lowest=0.0, highest=1.0,
    ),
    Dimension(
        name="scene_cuts",
        measure=VIDEO("cut_count"),
        bounds=Bounds(maximum=0.0),
        failure_hint="the picture cuts to another scene",
        weight=0.0,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        # Measured with the other temporal dimensions but judged last (`tiers`), so that a
        # clip that cuts to another person is also told that the face changed.
        tier=2, lowest=0.0,
    ),
    Dimension(
        name="temporal_flicker",
        measure=VIDEO("mean_brightness_change"),
        bounds=Bounds(maximum=0.02),
        failure_hint="brightness flickers from one frame to the next",
        weight=0.5,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        tier=1, lowest=0.0, highest=1.0,
    ),
    Dimension(
        name="movement",
        measure=VIDEO("flow_magnitude"),
        bounds=Bounds(minimum=0.002),
        failure_hint="nothing moves: a still passed off as a clip",
        weight=0.0,
        reads="sequence",
        unmeasurable_hint=FRAMES_UNREADABLE,
        tier=1, lowest=0.0,
    ),
)

FACE_CONSISTENCY = Dimension(
    name="face_consistency",
    measure=FACES("face_drift"),
    bounds=Bounds(maximum=0.6),
    failure_hint="the face changes into another person's during the clip",
    weight=0.0,
    reads="color",
    requires=frozenset({"face_model"}),
    over_frames="max",  # the frame whose face is farthest from the clip's first face
    tier=3, lowest=0.0,
)

BUILT_IN = (*TIER_ONE, PROMPT_ALIGNMENT, *TIER_TWO, NSFW, *CLIP_DIMENSIONS, *CONTAINER, *TEMPORAL, FACE_CONSISTENCY)

for _dimension in BUILT_IN:
    register_dimension(_dimension)
