"""`genline`: the operator's command line.

    genline run [--exit-after-demo]   the platform on the embedded stack, with a demo job
    genline create-tenant TENANT      a tenant and a new API key   (python -m services.ingest)
    genline grant TENANT CREDITS      credits for a tenant         (python -m services.ledger)
    genline replay ledger             rebuild accounts from the ledger topic and compare
    genline replay jobs [--tenant T]  rebuild every job's read model from all topics and compare
    genline score [--profile NAME] [--json] PATH...   score image files without the platform
"""

import sys

COMMANDS = {
    "run": "services.stack.__main__",
    "create-tenant": "services.ingest.__main__",
    "grant": "services.ledger.__main__",
    "replay": {"ledger": "services.ledger.replay", "jobs": "services.ingest.replay"},
    "score": "services.scorer.cli",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    import importlib

    command = sys.argv[1]
    target = COMMANDS[command]
    if isinstance(target, dict):  # `replay ledger`, `replay jobs`: the second word picks the module
        if len(sys.argv) < 3 or sys.argv[2] not in target:
            print(__doc__.strip(), file=sys.stderr)
            sys.exit(2)
        target = target[sys.argv[2]]
    module = importlib.import_module(target)
    keeps_name = command in ("create-tenant", "grant", "score")  # their modules take it as a sub-command
    sys.argv = [f"genline {command}", *([command] if keeps_name else []), *sys.argv[2:]]
    sys.exit(module.main())


if __name__ == "__main__":
    main()
