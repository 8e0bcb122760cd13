"""The alert rules, tested by promtool with a case for each alert, each with its runbook."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/k8s/monitoring/prometheusrule.yaml"
RUNBOOKS = ROOT / "docs/runbooks.md"
CASES = Path(__file__).with_name("alerts_test.yaml")


def promtool() -> str:
    """The promtool `make install-test` puts in the venv, else one on PATH."""
    beside = Path(sys.executable).with_name("promtool")
    found = str(beside) if beside.exists() else shutil.which("promtool")
    if not found:
        pytest.fail("promtool is missing: `make install-test` unpacks it into the venv")
    return found


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def run_promtool(rules_doc: dict, cases: str, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rules_doc["spec"]["groups"]}))
    (tmp_path / "alerts_test.yaml").write_text(cases)
    return subprocess.run([promtool(), "test", "rules", "alerts_test.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_promtool_cases_pass_for_every_alert(tmp_path):
    result = run_promtool(yaml.safe_load(RULES.read_text()), CASES.read_text(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_case_that_expects_it_to_fire():
    cases = yaml.safe_load(CASES.read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    assert {rule["alert"] for rule in alert_rules()} == fired


def test_promtool_fails_when_an_alert_cannot_fire(tmp_path):
    """The cases are not vacuous: with the outbox threshold raised out of reach they fail."""
    broken = RULES.read_text().replace("(genline_outbox_pending) > 500", "(genline_outbox_pending) > 5000")
    result = run_promtool(yaml.safe_load(broken), CASES.read_text(), tmp_path)
    assert result.returncode != 0
    assert "GenlineOutboxBacklog" in result.stdout + result.stderr


def test_every_alert_links_a_runbook_section():
    anchors = {re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
               for line in RUNBOOKS.read_text().splitlines() if line.startswith("## ")}
    for rule in alert_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert (ROOT / path) == RUNBOOKS, rule["alert"]
        assert anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]
