import sys

from services.common.runtime import run
from services.ledger.app import build
from services.ledger.settings import LedgerSettings


def main() -> None:
    """The service, and nothing else: its commands (`grant`, `replay ledger`, …) are `genline`'s."""
    if len(sys.argv) > 1:
        sys.exit(f"python -m services.ledger runs the ledger service and takes no arguments;"
                 f" its commands are genline's: genline {' '.join(sys.argv[1:])}")
    run(LedgerSettings, build)


if __name__ == "__main__":
    main()
