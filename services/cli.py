"""`genline`: the command line, for users and operators.

Your jobs (GENLINE_API_URL, GENLINE_API_KEY; --json on every command):
    genline jobs submit PROMPT --images K [--template T] [--wait] [--download DIR]
    genline jobs list | get JOB_ID | cancel JOB_ID | events JOB_ID | watch JOB_ID | download JOB_ID DIR

Receipts, checked offline (no call to the platform):
    genline receipts verify FILE... --keys FILE   signatures and each tenant's chain
    genline receipts keygen           a new receipt signing key (GENLINE_RECEIPT_SIGNING_KEY)
    genline service-keys [SERVICE...]  new identity keys for internal calls (GENLINE_SERVICE_KEY, _KEYS)
    genline data-keys new-kek FILE | rewrap | status   the key-encryption keys of the jobs' data keys

Operating the platform:
    genline run [--exit-after-demo]   the platform on the embedded stack, with a demo job
    genline create-tenant TENANT [--plan P]   a tenant and a new API key (python -m services.ingest)
    genline set-plan TENANT PLAN      move a tenant to another plan (free, pro, enterprise)
    genline grant TENANT CREDITS      credits for a tenant         (python -m services.ledger)
    genline replay ledger             rebuild accounts from the ledger's journal and compare
    genline replay jobs [--tenant T]  rebuild every job's read model from every journal and compare
    genline replay audit              rebuild the audit trail from every journal and compare
                                      (--source topics: from the topics instead)
    genline replay receipts [--tenant T]   check every receipt against the ledger and the public bucket
    genline bus status | rebuild [--all]   the topics as the journals see them; publish them again
    genline score [--profile NAME] [--json] PATH...   score image files without the platform

`genline COMMAND --help` describes each command.
"""

import importlib
import sys

COMMANDS = {
    "jobs": "services.jobs_cli",
    "run": "services.stack.__main__",
    "create-tenant": "services.ingest.__main__",
    "set-plan": "services.ingest.__main__",
    "grant": "services.ledger.__main__",
    "receipts": "services.receipts_cli",
    "replay": {"ledger": "services.ledger.replay", "jobs": "services.ingest.replay",
               "audit": "services.ledger.audit_replay", "receipts": "services.ingest.receipt_replay"},
    "score": "services.scorer.cli",
    "bus": "services.bus_cli",
    "service-keys": "services.service_keys_cli",
    "data-keys": "services.data_keys_cli",
}
KEEPS_NAME = {"create-tenant", "set-plan", "grant", "score"}  # their modules take it as a sub-command
PROG = {"jobs": "genline jobs", "receipts": "genline receipts", "run": "genline run", "create-tenant": "genline",
        "set-plan": "genline", "grant": "genline", "bus": "genline bus",
        "service-keys": "genline service-keys", "data-keys": "genline data-keys"}
HELP = ("-h", "--help")


def usage(status: int) -> None:
    print(__doc__.strip(), file=sys.stdout if status == 0 else sys.stderr)
    sys.exit(status)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        usage(0 if sys.argv[1:2] and sys.argv[1] in HELP else 2)
    command = sys.argv[1]
    target = COMMANDS[command]
    if isinstance(target, dict):  # `replay ledger`, `replay jobs`: the second word picks the module
        if len(sys.argv) < 3 or sys.argv[2] not in target:
            usage(0 if sys.argv[2:3] and sys.argv[2] in HELP else 2)
        target = target[sys.argv[2]]
    module = importlib.import_module(target)
    sys.argv = [f"genline {command}", *([command] if command in KEEPS_NAME else []), *sys.argv[2:]]
    sys.exit(module.main(prog=PROG[command]) if command in PROG else module.main())


if __name__ == "__main__":
    main()
