"""Ask for 2 images chosen from 8 candidates, and see how every candidate was judged."""

from genline_client import Genline


def shown(value) -> str:
    return "-" if value is None else f"{value:.3g}"


with Genline() as client:
    submitted = client.jobs.create("a lighthouse at dusk", images=2, candidates=8, seed=11, tier="low-cost")
    job = client.jobs.wait(submitted)

print(f"{job.state}: {len(job.outputs)} of {job.images} images from {job.candidates} candidates")
for c in job.scores:
    verdict = "selected" if c.index in job.selected else "passed" if c.passed else \
        "rejected" if c.judged else "not judged"
    print(f"  #{c.index} {c.provider!s:<15} {verdict:<10} score {shown(c.score):>5}"
          f"  failed {c.failed}  not measured {c.not_measured}")

# Why a rejected candidate was rejected: each failing dimension's value against its threshold,
# and why the dimensions after its first failing tier were not measured.
for c in [c for c in job.scores if c.rejected][:1]:
    for name in c.failed:
        result = c.dimensions[name]
        print(f"  #{c.index} {name}: {shown(result['value'])} (threshold {shown(result['threshold'])}):"
              f" {result['reason']}")
    for name in c.not_measured:
        print(f"  #{c.index} {name}: {c.dimensions[name]['reason']}")

# A dimension this deployment cannot measure says so, and counts against no image.
best = next(c for c in job.scores if c.index == job.selected[0])
print("  prompt_alignment:", best.dimensions.get("prompt_alignment", {}).get("reason"))

assert job.state == "succeeded" and len(job.selected) == 2 and len(job.scores) == job.candidates >= 8
assert all(c.passed for c in job.scores if c.index in job.selected)
assert all(c.failed for c in job.scores if c.rejected)  # every rejection names its dimensions
assert not any(c.passed or c.index in job.selected for c in job.scores if not c.judged)
