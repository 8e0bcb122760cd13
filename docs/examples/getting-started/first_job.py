"""The same job with the Python client (genline-client): submit, follow, download."""

from genline_client import Genline

with Genline() as client:  # GENLINE_API_URL and GENLINE_API_KEY from the environment
    submitted = client.jobs.create("a red bicycle against a brick wall", images=2, candidates=4)
    job = client.jobs.wait(submitted, on_event=lambda event: print(event.seq, event.type))
    print(job.state, f"charged {job.billing.charged} credits")
    for path in client.jobs.download(job, "out"):  # each file checked against its sha256
        print(path)
    assert job.state == "succeeded"
