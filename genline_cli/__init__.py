"""`genline`, the command line for users and operators: one argparse tree (`main.py`) to
which the client's commands (`jobs.py`, `receipts.py`), each service, the bus and the
embedded launcher add theirs.

Its modules besides those named above:
    account.py        `genline account`
    batches.py        `genline batches …` and `genline evaluate …`
    billing.py        `genline billing`
    members.py        `genline members` and `genline audit`
    provenance.py     `genline verify FILE`
    session.py        how a user's command talks to the API
    spend.py          `genline keys` and `genline alerts`
    subjects.py       `genline subjects …`: the people and products your jobs are of, on the Python
                      client
    usage.py          `genline usage`
"""
