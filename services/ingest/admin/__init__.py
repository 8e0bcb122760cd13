"""The ingest admin API, one feature package: what an operator does and watches on the admin
port, behind an operator token, in the audit trail, not part of the public OpenAPI document.
Its face exports nothing: app.py mounts its routes. (An operator's invitations are the members'
own: members/routes/admin.py.)

    routes/    the admin routes: tenants made and moved between plans (tenants.py), what an operator
               watches (platform.py), a tenant's retention, the calibration report and the margins
               (operations.py)
"""
