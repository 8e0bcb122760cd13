"""Jobs' routes; they do not import one another.

    jobs.py        `/v1/jobs`: submit a job and follow it to its links, cancel, report, erase
    candidates.py  `/v1/jobs/{id}/candidates/{index}/image`
    templates.py   `/v1/templates`: the template catalogue as a client sees it, priced by the ledger
"""
