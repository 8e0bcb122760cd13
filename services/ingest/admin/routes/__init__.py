"""The ingest admin API's routes, on the admin port; they do not import one another.

    tenants.py      `/admin/v1/tenants`: a tenant made on a plan with its first API key, moved to another plan
    platform.py     what an operator watches (the console's operator view), behind `platform:read`
    operations.py   a tenant's retention, the calibration report and the margins per template
"""
