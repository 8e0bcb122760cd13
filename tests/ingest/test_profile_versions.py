"""A profile's version (the digest a job and its receipt name) is the same in every process,
whatever string hashing orders its sets by, and changes with what a job of a subject adds."""

import os
import subprocess
import sys

from services.common.quality.profiles import load_profile, with_subject_checks
from services.ingest.jobs.scoring_checks import profile_version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRINT_VERSION = ("from services.common.quality.profiles import load_profile, with_subject_checks;"
                 "from services.ingest.jobs.scoring_checks import profile_version;"
                 "print(profile_version(with_subject_checks(load_profile('subject-headshot'), 'person')))")


def test_a_profiles_version_is_the_same_in_every_process():
    versions = {subprocess.run([sys.executable, "-c", PRINT_VERSION], capture_output=True, text=True, check=True,
                               cwd=ROOT, env=os.environ | {"PYTHONHASHSEED": seed}).stdout.strip()
                for seed in ("1", "2", "3", "4")}
    assert versions == {profile_version(with_subject_checks(load_profile("subject-headshot"), "person"))}


def test_a_subjects_checks_change_the_version():
    profile = load_profile("subject-headshot")
    assert profile_version(with_subject_checks(profile, "person")) != profile_version(profile)
