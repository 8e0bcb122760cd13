"""`genline run` (`python -m genline_stack`): the whole platform on the embedded stack, plus a demo job.

Starts SeaweedFS, Tansu and PostgreSQL, the five services as separate processes, seeds the demo
tenant, runs the demo job, then serves until Ctrl-C or SIGTERM and stops everything. While it
serves it keeps the platform up as an orchestrator would: a broker that exits is replaced by
an empty one, PostgreSQL is started again on its data, and a service that exits is started
again, after a pause that doubles while it keeps exiting.
"""

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from genline_stack.credentials import AUDITOR, OPERATOR, kek_env, read_person
from genline_stack.demo import run_demo
from genline_stack.demo_subject import run_subject_demo
from genline_stack.embedded import EmbeddedStack
from genline_stack.endpoints import Endpoints
from genline_stack.fleet import ServiceFleet
from genline_stack.stopping import Stop, signals_held, stopped_by_signals
from services.ingest.accounts import Tenant, ensure_tenant
from services.ingest.settings import IngestSettings
from services.ledger.app import grant
from services.ledger.records import CreditGrant
from services.ledger.settings import DEV_LEDGER_SECRETS, LedgerSettings

DEMO_TENANT = "demo"


async def seed(endpoints: Endpoints, credits: int, *, key_file: Path) -> str:
    """The demo tenant, granted its credits when it is created; a later run on the same data
    reuses the tenant and the key saved in `key_file`, and grants nothing."""
    saved = key_file.read_text().strip() if key_file.exists() else None
    settings = endpoints.settings(IngestSettings)
    api_key, created = await ensure_tenant(settings, Tenant(DEMO_TENANT, "Demo tenant"), known_key=saved)
    if created:
        await grant(endpoints.settings(LedgerSettings), CreditGrant(tenant_id=DEMO_TENANT, amount=credits, source="admin", reason="demo seed"))
    if api_key != saved:
        key_file.touch(mode=0o600)
        key_file.write_text(api_key)
    return api_key


def dev_ledger_secrets(endpoints: Endpoints) -> dict[str, str]:
    """The dev admin token and webhook secret, for those the developer has not set."""
    configured = endpoints.settings(LedgerSettings)
    missing = {name: value for name, value in DEV_LEDGER_SECRETS.items() if getattr(configured, name) is None}
    if configured.admin_tokens:  # the developer named operators
        missing.pop("admin_token", None)
    return missing


def write_operator_env(endpoints: Endpoints, path: Path) -> Path:
    """The environment of the operator's commands on this stack (the bus, grants, data keys,
    the replays): the operator's own database role, which may act as every service, and the
    jobs' KEK, to open sealed prompts; readable by its owner only; returns its path."""
    directory = endpoints.credentials_path()
    url = read_person(directory, OPERATOR).database_url(endpoints.database_url)
    return write_env(endpoints.service_env() | kek_env(directory) | {"GENLINE_DATABASE_URL": url}, path)


def write_auditor_env(endpoints: Endpoints, path: Path) -> Path:
    """The auditor's environment on this stack (`genline replay ledger | audit | jobs`): its own
    role, which reads every schema and writes none; no KEK, no object-store key."""
    url = read_person(endpoints.credentials_path(), AUDITOR).database_url(endpoints.database_url)
    env = {name: value for name, value in endpoints.service_env().items() if not name.startswith("GENLINE_S3_")}
    return write_env(env | {"GENLINE_DATABASE_URL": url}, path)


def write_env(env: dict[str, str], path: Path) -> Path:
    import os
    import shlex

    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.writelines(f"{name}={shlex.quote(value)}\n" for name, value in sorted(env.items()))
    return path.resolve()


def say_how_to_reach_the_ledger(fleet: ServiceFleet, dev_secrets: dict[str, str]) -> None:
    token = dev_secrets.get("admin_token", "<an operator token of GENLINE_ADMIN_TOKENS>")
    secret = dev_secrets.get("payment_webhook_secret", "<your GENLINE_PAYMENT_WEBHOOK_SECRET>")
    print(f"admin APIs (their own ports, not the public ones): ledger {fleet.admin_url('ledger')}/admin/v1,"
          f" ingest {fleet.admin_url('ingest')}/admin/v1, with 'Authorization: Bearer {token}'", flush=True)
    print(f"payment webhook: POST {fleet.url('ledger')}/v1/webhooks/payments, signed (Stripe-Signature) with {secret}",
          flush=True)


# A service that exits is started again after this pause, doubled at each exit that follows
# within RESTART_RESET_S of the last start (a crash loop), up to the ceiling.
RESTART_PAUSE_S, RESTART_PAUSE_MAX_S, RESTART_RESET_S = 1.0, 30.0, 60.0


class Restarts:
    """When each exited service may start again, with a pause that grows while it keeps exiting."""

    def __init__(self) -> None:
        self.pause: dict[str, float] = {}
        self.started_at: dict[str, float] = {}
        self.due: dict[str, float] = {}

    def exited(self, name: str, now: float) -> float:
        """Note an exit; returns the pause before its restart."""
        if name not in self.due:
            crash_loop = now - self.started_at.get(name, float("-inf")) < RESTART_RESET_S
            self.pause[name] = min(RESTART_PAUSE_MAX_S, self.pause.get(name, RESTART_PAUSE_S / 2) * 2) \
                if crash_loop else RESTART_PAUSE_S
            self.due[name] = now + self.pause[name]
        return self.pause[name]

    def ready_to_start(self, name: str, now: float) -> bool:
        if self.due.get(name, float("inf")) > now:
            return False
        del self.due[name]
        self.started_at[name] = now
        return True


def keep_up(stack: EmbeddedStack, fleet: ServiceFleet, *, restarts: Restarts) -> None:
    """One look at every process: each one that exited is started again. PostgreSQL first:
    replacing the broker takes the bus fence, a lock in the database. A replacement that
    fails (the other died meanwhile) is tried again at the next look."""
    if not stack.postgres_alive():
        print("PostgreSQL exited; starting it again on its data (crash recovery)", flush=True)
        attempt(stack.restart_postgres, "starting PostgreSQL")
    if not stack.broker_alive():
        print("the broker exited; starting an empty one (the services publish their journals again)", flush=True)
        attempt(stack.restart_broker, "starting the broker")
    now = time.monotonic()
    for name in fleet.crashed():
        if name not in restarts.due:
            code = fleet.processes[name].returncode
            print(f"{name} exited ({code}); starting it again in {restarts.exited(name, now):.0f}s", flush=True)
        if restarts.ready_to_start(name, now):
            fleet.start(name)


def attempt(action: Callable[[], object], what: str) -> None:
    try:
        action()
    except Exception as exc:
        print(f"{what} failed ({type(exc).__name__}: {exc}); trying again", flush=True)


def serve_until_stopped(stack: EmbeddedStack, fleet: ServiceFleet) -> None:
    """Until stopped, keeping every process up (see `keep_up`)."""
    restarts = Restarts()
    while True:
        keep_up(stack, fleet, restarts=restarts)
        time.sleep(0.5)


def launch(args: argparse.Namespace) -> int:
    """What `genline run` does (its arguments in `genline_stack.cli`); the exit status. SIGTERM
    and SIGINT stop it, and everything it started, at any point (genline_stack.stopping)."""
    with stopped_by_signals():
        return launch_and_serve(args)


def launch_and_serve(args: argparse.Namespace) -> int:
    stack = EmbeddedStack(data_dir=args.data_dir.resolve(), kafka_tls=True)  # as a cluster: the broker over TLS only
    fleet = None
    started = time.monotonic()
    try:
        endpoints = stack.start()
        print(f"embedded stack up: kafka {endpoints.kafka_bootstrap}, s3 {endpoints.s3_endpoint_url}", flush=True)
        api_key = asyncio.run(seed(endpoints, args.credits, key_file=args.data_dir / "demo-api-key"))
        operator_env = write_operator_env(endpoints, args.data_dir / "operator.env")
        auditor_env = write_auditor_env(endpoints, args.data_dir / "auditor.env")
        dev_secrets = dev_ledger_secrets(endpoints)
        fleet = ServiceFleet(endpoints=endpoints, log_dir=args.data_dir / "logs", ingest_port=args.port, admin_ports=True,
                             extra_env={f"GENLINE_{name.upper()}": value for name, value in dev_secrets.items()})
        fleet.start_all()
        print(f"services ready in {time.monotonic() - started:.1f}s; public API {fleet.ingest_url}", flush=True)
        print(f"demo tenant API key: {api_key}", flush=True)
        say_how_to_reach_the_ledger(fleet, dev_secrets)
        print(f"operator commands (genline replay, bus, grant, data-keys): first `set -a; . {operator_env}; set +a`",
              flush=True)
        print(f"the auditor's replays (genline replay ledger, audit, jobs): `set -a; . {auditor_env}; set +a`",
              flush=True)
        delivered = run_demo(fleet.ingest_url, api_key, say=lambda line: print(line, flush=True))
        if args.subject_demo:
            delivered = run_subject_demo(fleet.ingest_url, api_key, say=lambda line: print(line, flush=True)) \
                and delivered
        print(f"demo finished {time.monotonic() - started:.1f}s after start", flush=True)
        if args.exit_after_demo:
            return 0 if delivered else 1
        print(f"documentation: {fleet.ingest_url}/docs/ (built by make docs)", flush=True)
        print(f"web console: {fleet.ingest_url}/console (sign in with the demo key); operator view:"
              f" {fleet.admin_url('ingest')}/console/operator (with the admin token)", flush=True)
        print(f"serving on {fleet.ingest_url}; press Ctrl-C to stop", flush=True)
        serve_until_stopped(stack, fleet)
    except Stop as stop:
        print(f"\n{stop}: stopping", flush=True)
        return 0
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        with signals_held():
            if fleet:
                fleet.stop_all()
            stack.stop()
    return 0
