"""Releases as the repository states them (services/common/releases.py, docs/releases.md): this
release is the version pyproject.toml and the images name; the previous one is a commit of this
repository, and its frozen record (the events its code reads, the migrations it applied) is what
that commit holds; the release notes name every event change and migration since, and each
past release's commit and migrations; a setting naming a release this one does not know stops
the service at start; `genline version` says it all. This release's migrations only expand: a
step that would break the previous release's code (a drop, a rename, a narrowed column, a
constraint checked against every row under its lock) stands only in a file that says why it no
longer matters (`-- contract step: ...`); tests/releases checks the previous release's own
statements against the migrated schema.)"""

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from genline_cli.main import main
from services.common.cli import release_summary
from services.common.releases import PREVIOUS, RELEASE, RELEASES, record_of
from services.common.settings import ServiceSettings
from tests.releases.records import record_of_tree, source_of

ROOT = Path(__file__).resolve().parents[1]
NOTES = ROOT / "docs" / "releases.md"
# Statements of a contract step: what the previous release's code may still read or write is
# dropped, renamed or narrowed, or every row is checked under a lock that holds up writers.
CONTRACT_STEPS = re.compile(
    r"\bDROP\s+(?:TABLE|COLUMN|VIEW|FUNCTION|TYPE|SCHEMA)\b|\bRENAME\b"
    r"|\bALTER\s+COLUMN\s+\S+\s+(?:SET\s+NOT\s+NULL|(?:SET\s+DATA\s+)?TYPE)\b"
    r"|\bADD\s+COLUMN\s+[^,;]*\bNOT\s+NULL\b(?![^,;]*\bDEFAULT\b)"
    r"|\bADD\s+CONSTRAINT\s+[^;]*?\b(?:CHECK|FOREIGN\s+KEY)\b(?![^;]*\bNOT\s+VALID\b)", re.I)
SAYS_WHY = "-- contract step:"


def section(version: str) -> str:
    """The release notes' section of `version`: from its heading to the next one of its level."""
    text = NOTES.read_text()
    found = re.search(rf"^## {re.escape(version)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert found, f"docs/releases.md has no section '## {version}'"
    return found.group(1)


def test_this_release_is_the_version_pyproject_names_and_the_last_of_the_releases():
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == RELEASE
    assert RELEASES[-1].version == RELEASE and RELEASES[-1].commit is None
    assert all(re.fullmatch(r"[0-9a-f]{40}", release.commit or "") for release in RELEASES[:-1])
    assert PREVIOUS is RELEASES[-2]


def test_the_previous_release_is_a_commit_of_this_repository():
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-t", PREVIOUS.commit], capture_output=True, text=True)
    assert found.stdout.strip() == "commit", f"{PREVIOUS.commit} is not in this clone: {found.stderr}"


def test_the_previous_releases_frozen_record_is_what_its_commit_holds(tmp_path):
    frozen = {key: value for key, value in record_of(PREVIOUS.version).items() if key != "commit"}
    assert record_of_tree(source_of(PREVIOUS, tmp_path / "src"), PREVIOUS.version) == frozen
    assert record_of(PREVIOUS.version)["commit"] == PREVIOUS.commit


def subject_of(change: str) -> str:
    """What a change line names, as the notes write it: `JobSpec.output_format`."""
    words = change.split()
    return words[-2] if change.startswith(("event type", "model")) else words[0]


def test_the_notes_name_every_event_change_and_migration_since_the_previous_release():
    summary, notes = release_summary(), section(RELEASE)
    missing = [change for change in summary.event_changes if f"`{subject_of(change)}`" not in notes]
    missing += [migration for migration in summary.migrations if f"`{migration}`" not in notes]
    assert f"runs beside {PREVIOUS.version}" in notes
    assert not missing, f"docs/releases.md's {RELEASE} does not name: {missing}"


@pytest.mark.parametrize("release", RELEASES[:-1], ids=lambda release: release.version)
def test_the_notes_give_each_past_release_its_commit_and_its_migrations(release):
    notes = section(release.version)
    migrations = [f"{part}/{name}" for part, names in record_of(release.version)["migrations"].items() for name in names]
    assert release.commit in notes
    assert [m for m in migrations if f"`{m}`" not in notes] == []


def test_a_service_told_to_write_for_a_release_it_does_not_know_does_not_start():
    with pytest.raises(ValidationError, match="GENLINE_EVENTS_COMPATIBLE_WITH is '0.0.9'"):
        ServiceSettings(database_url="postgresql://x@h/db", environment="test", s3_access_key_id="k",
                        s3_secret_access_key="s", events_compatible_with="0.0.9")
    assert ServiceSettings(database_url="postgresql://x@h/db", environment="test", s3_access_key_id="k",
                           s3_secret_access_key="s").events_compatible_with == PREVIOUS.version


def test_genline_version_names_the_release_the_one_it_runs_beside_and_what_changed(capsys):
    assert main(["version", "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["version"] == RELEASE and said["runs_beside"] == {"version": PREVIOUS.version,
                                                                  "commit": PREVIOUS.commit}
    assert "JobSpec.output_format added" in said["event_changes"] and "common/0007_events_held" in said["migrations"]
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith(f"genline {RELEASE}\n")
    assert main(["version", "--record"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["version"] == RELEASE and "genline.job.submitted.v2" in record["events"]["events"]


def contract_steps(sql: str) -> list[str]:
    """The contract steps a migration takes, unless it says why they are safe (SAYS_WHY)."""
    if SAYS_WHY in sql:
        return []
    code = re.sub(r"--[^\n]*", "", sql)
    return [match.group(0) for match in CONTRACT_STEPS.finditer(code)]


def migration_path(migration: str) -> Path:
    part, name = migration.split("/")
    return ROOT / "services" / part / "migrations" / f"{name}.sql"


def test_this_releases_migrations_only_expand():
    steps = {m: found for m in release_summary().migrations if (found := contract_steps(migration_path(m).read_text()))}
    assert steps == {}, f"contract steps in this release's migrations (the previous release's code may need them): {steps}"


@pytest.mark.parametrize("planted", [
    "ALTER TABLE transfers DROP COLUMN timeout_at;", "ALTER TABLE jobs RENAME COLUMN state TO status;",
    "ALTER TABLE jobs ALTER COLUMN tenant_id TYPE varchar(20);", "ALTER TABLE jobs ALTER COLUMN note SET NOT NULL;",
    "ALTER TABLE jobs ADD COLUMN region text NOT NULL;",
    "ALTER TABLE jobs ADD CONSTRAINT positive CHECK (images > 0);"])
def test_a_contract_step_in_a_migration_is_found_unless_it_says_why(planted):
    assert contract_steps(f"-- planted\n{planted}\n")
    assert contract_steps(f"{SAYS_WHY} 0.1.0 never read it\n{planted}\n") == []


@pytest.mark.parametrize("expanding", [
    "ALTER TABLE jobs ADD COLUMN region text;", "ALTER TABLE jobs ADD COLUMN region text NOT NULL DEFAULT 'eu';",
    "ALTER TABLE jobs ADD CONSTRAINT positive CHECK (images > 0) NOT VALID;", "CREATE TABLE events_held (n int);"])
def test_an_expanding_migration_takes_no_contract_step(expanding):
    assert contract_steps(expanding) == []


def test_the_manifests_write_events_for_the_previous_release_until_the_operator_raises_it():
    import yaml

    config = yaml.safe_load((ROOT / "deploy/k8s/base/configmap.yaml").read_text())["data"]
    assert config["GENLINE_EVENTS_COMPATIBLE_WITH"] == PREVIOUS.version
