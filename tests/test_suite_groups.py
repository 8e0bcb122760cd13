"""The suite's workers get whole groups (`make test`: pytest -n N --dist loadgroup): a module's
tests on one worker, so that its module-scoped stack starts once, and every `own_stack` test on
one worker, so that no two of them start a stack of their own side by side. The scheduler reads
a test's group from its id (`nodeid@group`); this checks, as the controller sees them, that the
ids carry the groups tests/conftest.py gives."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_scheduler_sees_each_module_and_the_own_stack_tests_as_one_group(tmp_path):
    # A temporary root of its own: a pytest starting under the suite's own root would clean up the
    # suite's older numbered folders, the workers' stacks among them.
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup", "--setup-plan",
         "-v", "tests/test_stopping.py", "tests/test_stack_launcher.py", "tests/test_names.py"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=os.environ | {"PYTEST_DEBUG_TEMPROOT": str(tmp_path)})
    ids = re.findall(r"^(tests/\S+::\S+)", listed.stdout, flags=re.M)
    assert ids, listed.stdout + listed.stderr
    groups = {test.rsplit("@", 1)[-1] for test in ids if "@" in test}
    assert len(groups) == 2 and all("@" in test for test in ids), ids
    for test in ids:
        path = test.split("::", 1)[0]
        assert test.endswith("@own-stack" if path != "tests/test_names.py" else f"@{path}"), test
