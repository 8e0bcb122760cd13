"""`genline service-keys`: a new identity key for each service (services/common/identity.py),
printed as the Secrets and the ConfigMap that hold them on Kubernetes want them."""

import argparse
import json
import sys
from collections.abc import Sequence

from services.common.identity import INTERNAL_SERVICES, new_service_key


def main(argv: Sequence[str] | None = None, prog: str = "genline service-keys") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Print a new Ed25519 identity key per service: each GENLINE_SERVICE_KEY goes into that service's own"
        " Secret only; GENLINE_SERVICE_KEYS (public) goes to every service."))
    parser.add_argument("services", nargs="*", metavar="SERVICE",
                        help=f"the services to make keys for: {', '.join(INTERNAL_SERVICES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.services) - set(INTERNAL_SERVICES)
    if unknown:
        parser.error(f"no service {', '.join(sorted(unknown))}; choose from {', '.join(INTERNAL_SERVICES)}")
    public = {}
    for service in args.services or INTERNAL_SERVICES:
        seed, public[service] = new_service_key()
        print(f"# genline-{service} Secret")
        print(f"GENLINE_SERVICE_KEY={seed}")
    print("# every service (public: a ConfigMap); merge with the keys of services not renewed")
    print(f"GENLINE_SERVICE_KEYS={json.dumps(public, separators=(',', ':'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
