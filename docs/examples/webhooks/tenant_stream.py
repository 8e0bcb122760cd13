"""Every job of yours on one stream (GET /v1/events/stream): what a dashboard listens to."""

from genline_client import Genline

with Genline() as client:
    job = client.jobs.wait(client.jobs.create("a kite over the dunes", tier="low-cost"))

    # From cursor 0 the stream replays every entry of every job of yours, in the order they were
    # written, then goes on live; it never ends by itself. A dashboard keeps the last cursor it
    # saw and passes it as `after` (Last-Event-ID) when it reconnects.
    seen = []
    for event in client.jobs.stream_all(after=0):
        if event.job_id == job.id:
            seen.append(event)
            print(f"cursor {event.cursor:>6}  seq {event.seq:>3}  {event.type}")
        if event.job_id == job.id and event.final:
            break

assert [event.seq for event in seen] == list(range(1, len(seen) + 1))  # the job's whole log, in order
assert seen[-1].new_state == "succeeded"
