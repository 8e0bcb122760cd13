"""Follow a job as it comes: candidates generated, scored and passing, images still needed,
the ETA, and each candidate's image as it passes."""

from pathlib import Path

from genline_client import Genline, JobEvent, Progress

with Genline() as client:  # GENLINE_API_URL and GENLINE_API_KEY from the environment
    seen: list[JobEvent] = []

    def show(progress: Progress) -> None:
        eta = "unknown" if progress.eta_s is None else f"{progress.eta_s:.0f} s"
        print(f"{progress.generated}/{progress.candidates} generated, {progress.scored} scored,"
              f" {progress.passing}/{progress.images} passing, {progress.needed} needed, ETA {eta}")
        for preview in progress.previews:  # read with your API key
            Path(f"passed-{preview.index}.png").write_bytes(client.jobs.preview(preview))

    submitted = client.jobs.create("a studio headshot, soft light", images=2, candidates=8, tier="low-cost")
    job = client.jobs.wait(submitted, on_event=seen.append, on_progress=show)

print(job.state, [state for state, _ in job.history])
assert job.state == "succeeded"
assert [event.seq for event in seen] == list(range(1, len(seen) + 1))  # every entry once, in order
assert [state for state, _ in job.history][0] == "submitted" and job.history[-1][0] == "succeeded"
