"""`genline`, the command line for users and operators: one argparse tree (`main.py`) to
which the client's commands (`jobs.py`, `receipts.py`), each service, the bus and the
embedded launcher add theirs."""
