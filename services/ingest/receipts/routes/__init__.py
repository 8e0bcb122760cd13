"""The receipts' and provenance's HTTP routes; they do not import one another.

    receipts.py     signed job receipts, a tenant's chain of them, and the keys that verify them
    provenance.py   provenance for anyone: what a file proves, the trust anchors, soft bindings
"""
