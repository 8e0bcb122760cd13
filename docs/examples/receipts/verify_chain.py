"""Check receipts with genline-client: one job's receipt, then your whole chain."""

import copy

from genline_client import Genline, ReceiptVerificationError, verify_chain, verify_receipt

with Genline() as client:
    job = client.jobs.wait(client.jobs.create("a paper boat on a pond", tier="low-cost"))
    receipt = client.receipt(job)
    keys = client.signing_keys()  # keep a copy: with it, everything below works offline
    chain = list(client.receipts())  # every receipt of yours, in chain order, page by page

body = verify_receipt(receipt, keys)  # ReceiptVerificationError says what does not check out
print(f"receipt {body['sequence']} of job {body['job_id']}: {body['state']},"
      f" {body['credits']['charged']} credits charged, signed with key {body['kid']}")
assert body["job_id"] == str(job.id) and body["credits"]["charged"] == job.billing.charged

bodies = verify_chain(chain, keys)  # each signature, then the links: 1, 2, 3 … each naming the one before
print(f"{len(bodies)} receipts, 1 to {bodies[-1]['sequence']}: every signature and every link checks out")
assert str(job.id) in {b["job_id"] for b in bodies}

# Change one number and the receipt no longer verifies.
forged = copy.deepcopy(receipt)
forged["receipt"]["credits"]["charged"] = 0
try:
    verify_receipt(forged, keys)
except ReceiptVerificationError as error:
    print("a changed receipt fails:", error)
else:
    raise SystemExit("a changed receipt verified")
