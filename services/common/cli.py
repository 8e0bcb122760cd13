"""The `genline` command line is one argparse tree, to which each part of the platform adds
its commands (`add_commands(tree)` in its `cli` module), as a FastAPI app includes routers:
one parser, one generated `--help` at every level. A command's `run(args)` returns its exit
status. Modules that add commands import only what declaring them needs; what a command
does is imported when it runs, so `genline jobs list` never loads torch.

Common's own commands: `genline service-keys`, new identity keys for internal calls, and
`genline version`, the release and what it changed since the one it runs beside.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from services.common.identity import INTERNAL_SERVICES, new_service_key

Run = Callable[[argparse.Namespace], int | None]
# Where a replay reads history from (services.common.bus.replay.SOURCES, which loads Kafka's client).
REPLAY_SOURCES = ("journal", "topics")


def add_replay_source(parser: argparse.ArgumentParser, help: str) -> None:  # noqa: A002
    parser.add_argument("--source", choices=REPLAY_SOURCES, default="journal", help=help)


class CommandTree:
    """A parser and its subcommands, grouped by path (`tree.command("replay ledger", …)`)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self._groups: dict[tuple[str, ...], argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    def group(self, path: str, help: str, *, description: str | None = None) -> argparse.ArgumentParser:  # noqa: A002
        """The parser of a group of commands (`replay`, `receipts`), made on first mention."""
        words = tuple(path.split())
        parent = self._subcommands(words[:-1])
        if words[-1] not in parent.choices:
            made = parent.add_parser(words[-1], help=help, description=description or help)
            self._groups[words] = made.add_subparsers(dest="_".join(("command", *words)), required=True,
                                                      metavar="COMMAND")
        return parent.choices[words[-1]]

    def command(self, path: str, run: Run, *, help: str, description: str | None = None,  # noqa: A002
                epilog: str | None = None, parents: Sequence[argparse.ArgumentParser] = (),
                formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter) -> argparse.ArgumentParser:
        """A command at `path` (its group made when missing), whose `run(args)` does it: `help` in
        its group's list, `description` (else the same text) atop its own help and `epilog` below
        it; `parents` lend it their options."""
        *group, name = path.split()
        parser = self._subcommands(tuple(group)).add_parser(
            name, help=help, description=description or help, epilog=epilog, parents=list(parents),
            formatter_class=formatter_class)
        parser.set_defaults(run=run)
        return parser

    def _subcommands(self, words: tuple[str, ...]) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        if words not in self._groups:
            if words:
                self.group(" ".join(words), help=f"{' '.join(words)} commands")
            else:
                self._groups[()] = self.parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        return self._groups[words]

    def main(self, argv: Sequence[str] | None = None) -> int:
        args = self.parser.parse_args(argv)
        status = args.run(args)
        return 0 if status is None else status


def new_service_keys(args: argparse.Namespace) -> int:
    unknown = set(args.services) - set(INTERNAL_SERVICES)
    if unknown:
        args.parser.error(f"no service {', '.join(sorted(unknown))}; choose from {', '.join(INTERNAL_SERVICES)}")
    public = {}
    for service in args.services or INTERNAL_SERVICES:
        seed, public[service] = new_service_key()
        print(f"# genline-{service} Secret")
        print(f"GENLINE_SERVICE_KEY={seed}")
    print("# every service (public: a ConfigMap); merge with the keys of services not renewed")
    print(f"GENLINE_SERVICE_KEYS={json.dumps(public, separators=(',', ':'))}")
    return 0


def migration_packages() -> tuple[str, ...]:
    """The packages whose migrations a release applies: common's (every service applies them
    first), then each service's own."""
    from services.common.contracts import PUBLISHERS
    from services.common.db import COMMON_MIGRATIONS

    return (COMMON_MIGRATIONS, *(f"services.{service}" for service in PUBLISHERS))


def this_record() -> dict[str, Any]:
    """This release's record, as `release_records/<version>.json` freezes it when it is cut
    (services/common/releases.py): its events' shapes and the migrations of common and of
    each service, by its name."""
    from services.common.db import migration_files
    from services.common.event_shapes import current_shapes
    from services.common.releases import RELEASE

    return {"version": RELEASE, "events": current_shapes(),
            "migrations": {package.rsplit(".", 1)[-1]: [version for version, _ in migration_files(package)]
                           for package in migration_packages()}}


@dataclass(frozen=True, kw_only=True)
class ReleaseSummary:
    """This release, the one it runs beside, and what changed between them (docs/releases.md)."""

    version: str
    runs_beside: dict[str, str | None]
    event_changes: list[str]
    migrations: list[str]


def release_summary() -> ReleaseSummary:
    from services.common.event_shapes import changes, current_shapes
    from services.common.releases import PREVIOUS, RELEASE, record_of

    before, now = record_of(PREVIOUS.version), this_record()
    added = [f"{part}/{name}" for part, names in now["migrations"].items()
             for name in names if name not in before["migrations"].get(part, [])]
    return ReleaseSummary(version=RELEASE, runs_beside={"version": PREVIOUS.version, "commit": PREVIOUS.commit},
                          event_changes=changes(before["events"], current_shapes()), migrations=added)


def show_version(args: argparse.Namespace) -> int:
    from services.common.releases import PREVIOUS, RELEASE

    if args.record:
        print(json.dumps(this_record(), indent=1, sort_keys=True))
        return 0
    summary = release_summary()
    if args.json:
        print(json.dumps(asdict(summary), indent=2))
        return 0
    print(f"genline {RELEASE}")
    print(f"runs beside {PREVIOUS.version} (commit {PREVIOUS.commit}) in a rolling update, and back; its events are"
          f" written for {PREVIOUS.version}'s consumers until GENLINE_EVENTS_COMPATIBLE_WITH={RELEASE}")
    print(f"event changes since {PREVIOUS.version}: {'; '.join(summary.event_changes) or 'none'}")
    print(f"migrations since {PREVIOUS.version}: {', '.join(summary.migrations) or 'none'}")
    return 0


def add_commands(tree: CommandTree) -> None:
    version = tree.command("version", show_version, help="this release, and what changed since the one it runs beside",
        description="The release of this command (and of the services installed with it), the release it runs beside"
                    " in a rolling update, and the event changes and migrations between them (docs/releases.md).")
    version.add_argument("--json", action="store_true")
    version.add_argument("--record", action="store_true",
                         help="print the release's record (its events' shapes and its migrations), as"
                              " services/common/release_records/<version>.json freezes it when it is cut")
    keys = tree.command("service-keys", new_service_keys, help="new identity keys for internal calls",
        description="Print a new Ed25519 identity key per service: each GENLINE_SERVICE_KEY goes into that service's"
                    " own Secret only; GENLINE_SERVICE_KEYS (public) goes to every service.")
    keys.add_argument("services", nargs="*", metavar="SERVICE",
                      help=f"the services to make keys for: {', '.join(INTERNAL_SERVICES)} (default: all)")
    keys.set_defaults(parser=keys)

