"""`genline receipts …`: check receipts offline (genline-client's verifier, which needs
nothing of the platform), and make a signing key for operators."""

import argparse
import sys
from collections.abc import Sequence

from genline_client import receipts as client_receipts


def keygen(prog: str) -> int:
    from services.ingest.receipts import Signer, load_signing_key, new_signing_key_text

    text = new_signing_key_text()
    print(f"GENLINE_RECEIPT_SIGNING_KEY={text}")
    print(f"# key id (kid): {Signer(load_signing_key(text)).kid}; keep the key secret, publish nothing: ingest"
          " publishes its public key", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "genline receipts") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["keygen"]:
        argparse.ArgumentParser(prog=f"{prog} keygen", description="Print a new receipt signing key.").parse_args(argv[1:])
        return keygen(prog)
    return client_receipts.main(argv, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
