"""Image-to-video with the Python client: a photo of yours (here, an image a job delivered)
uploaded as the first frame, a 3-second square clip asked at 480p, followed to its end and
downloaded (a download cut off part-way goes on from the bytes it has, with Range)."""

from pathlib import Path

from genline_client import Genline, Video

with Genline() as client:  # GENLINE_API_URL and GENLINE_API_KEY from the environment
    photo_job = client.jobs.wait(client.jobs.create("a red bicycle against a brick wall"))
    [photo] = client.jobs.download(photo_job, "photos/")

    still = client.upload(photo)  # screened like any input photo: 422 with what to change
    submitted = client.jobs.create("the bicycle rolls slowly out of the frame", template="image-to-video",
                                   input_upload=str(still.id), candidates=2,
                                   video=Video(duration_s=3, aspect_ratio="1:1", resolution="480p"))
    job = client.jobs.wait(submitted)
    [path] = client.jobs.download(job, "clips/")  # checked against the clip's sha256

[clip] = job.outputs
print(f"{job.state}: {clip.duration_s:.1f} s, {clip.codec}, {clip.fps:g} fps, {clip.width}x{clip.height},"
      f" {clip.frames} frames, poster {clip.poster_url is not None}; credits charged {job.billing.charged}")
assert job.state == "succeeded" and clip.is_video and clip.media_type == "video/mp4"
assert Path(path).read_bytes()[4:8] == b"ftyp"  # an MP4 (ISO base media file)
assert abs(clip.duration_s - 3) <= 1 / clip.fps  # as long as asked, within a frame
