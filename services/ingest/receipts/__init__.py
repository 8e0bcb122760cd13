"""Receipts and provenance, one feature package: signed job receipts (issued, read, replayed),
the keys that verify them, and what a file proves (`POST /v1/verify`); their routes, their rules
and their SQL. The signing key as configured is the kernel's (signing_key.py), for the settings
read it.

Its face, what other features may use: the signer and a job's receipts issued as its view turns
final (`ReceiptSigner`, `Issuance`, `issue_receipts`, for the projection, the sweeper and the
bus handlers), and the totals receipts keep by day and by key (`daily_totals`,
`attributed_totals`, for usage).

    routes/       signed job receipts and their keys (receipts.py); provenance for anyone (provenance.py)
    store.py      the receipts' tables: receipts, their chain per tenant, the signing keys, totals by day
    document.py   what a receipt says and how it is signed, without I/O
    issuing.py    issuing and reading receipts, and the keys they were signed with
    replay.py     `genline replay receipts`: every receipt checked against the record
    provenance.py what a file proves (POST /v1/verify): its Content Credentials, its watermark, its delivery
"""

from services.ingest.receipts.document import ReceiptSigner
from services.ingest.receipts.issuing import Issuance, attributed_totals, daily_totals, issue_receipts

__all__ = ["Issuance", "ReceiptSigner", "attributed_totals", "daily_totals", "issue_receipts"]
