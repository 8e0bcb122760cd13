"""The frame's HTTP routes, those of no feature (each feature package holds its own: jobs/,
members/, subjects/, webhooks/, receipts/, compat/, batches/, evaluations/, admin/, console/,
billing/, inputs/, accounts/).

    audit.py             `/v1/audit`: the tenant's audit log, for owners and admins
    documentation.py     `/docs/`: the documentation site, served beside the API it documents
    internal.py          `/internal/v1`: the data-key API, for the services that need a job's
                         content in clear
    root.py              `GET /`: where to go from the API's root: the documentation, the API's
                         document, the console and the keys receipts are verified with
"""
