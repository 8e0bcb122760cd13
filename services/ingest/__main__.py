"""`python -m services.ingest`: the service. Its commands run through `genline` (cli.py)."""

from services.common.runtime import run
from services.ingest.app import build
from services.ingest.settings import IngestSettings


def main() -> None:
    run(IngestSettings, build)


if __name__ == "__main__":
    main()
