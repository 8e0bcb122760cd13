"""Ingest's HTTP routes, one module per resource, for the features not yet in a package of their
own (members/, subjects/, webhooks/, receipts/, compat/, batches/, evaluations/, admin/,
console/, billing/, inputs/ and accounts/ hold theirs).

    audit.py             `/v1/audit`: the tenant's audit log, for owners and admins
    candidates.py        `/v1/jobs/{id}/candidates/{index}/image`
    documentation.py     `/docs/`: the documentation site, served beside the API it documents
    internal.py          `/internal/v1`: the data-key API, for the services that need a job's
                         content in clear
    jobs.py              `/v1/jobs`: submit a job and follow it to its links
    root.py              `GET /`: where to go from the API's root: the documentation, the API's
                         document, the console and the keys receipts are verified with
    templates.py         `/v1/templates`: the template catalogue as a client sees it, priced by the
                         ledger
"""
