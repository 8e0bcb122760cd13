"""List your jobs: newest first, a page at a time, filtered by state, template and time."""

from datetime import timedelta

from genline_client import Genline

with Genline() as client:
    # Two small jobs to find again.
    first = client.jobs.create("a lighthouse at dusk", tier="low-cost")
    second = client.jobs.create("a lighthouse at dawn", tier="low-cost")
    for submitted in (first, second):
        client.jobs.wait(submitted)
    since = first.created_at - timedelta(milliseconds=1)  # created_after is exclusive

    # One page: `next` is the cursor of the following (older) page, None on the last one.
    page = client.jobs.list(limit=1, created_after=since)
    print("page 1:", [(str(job.id), job.state) for job in page.data], "next:", page.next)

    # `iterate` follows the cursors; jobs submitted while you page never shift the pages to come.
    found = list(client.jobs.iterate(limit=1, created_after=since, state="succeeded", template="generic"))
    for job in found:
        print(job.id, job.state, f"{job.delivered}/{job.images}", job.created_at)
    assert [job.id for job in found] == [second.id, first.id]  # newest first
