"""`score` on the command line: JSON shape, table, exit statuses, usage errors."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.scorer.cli import main
from tests.scorer.conftest import blurred, png

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERIC = {"sharpness", "noise", "blockiness", "exposure", "clipping", "blank", "banding", "nsfw", "size", "aspect",
           "prompt_alignment"}


@pytest.fixture(scope="module")
def files(tmp_path_factory, photos) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    paths = {
        "astronaut": folder / "astronaut.png",
        "coffee": folder / "coffee.png",
        "black": folder / "black.png",
        "junk": folder / "junk.png",
    }
    paths["astronaut"].write_bytes(png(photos["astronaut"]))
    paths["coffee"].write_bytes(png(photos["coffee"]))
    paths["black"].write_bytes(png(np.zeros((64, 64, 3), dtype=np.uint8)))
    paths["junk"].write_bytes(b"this is not an image")
    return paths


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_json_has_one_object_per_image(files):
    status, out, _ = run("score", "--json", str(files["astronaut"]), str(files["black"]))
    report = json.loads(out)
    assert status == 1
    assert [item["path"] for item in report] == [str(files["astronaut"]), str(files["black"])]
    assert [item["passed"] for item in report] == [True, False]
    for item in report:
        assert set(item) == {"path", "passed", "score", "fingerprint", "dimensions"}
        assert set(item["dimensions"]) == GENERIC
        for result in item["dimensions"].values():
            assert set(result) == {"value", "threshold", "passed", "reason"}
    black = report[1]["dimensions"]["blank"]
    assert black == {"value": 0.0, "threshold": 0.02, "passed": False, "reason": black["reason"]}
    assert "blank or a uniform frame" in black["reason"]


def test_unavailable_dimension_is_null_and_not_passed(files):
    _, out, _ = run("score", "--json", "--prompt", "an astronaut", str(files["astronaut"]))
    alignment = json.loads(out)[0]["dimensions"]["prompt_alignment"]
    assert alignment["value"] is None and alignment["passed"] is False
    assert "unavailable" in alignment["reason"]


def test_all_passing_exits_0_with_a_table(files):
    status, out, err = run("score", str(files["astronaut"]), str(files["coffee"]))
    assert status == 0 and err == ""
    assert f"{files['astronaut']}  PASS" in out
    assert "sharpness" in out and "n/a" in out


def test_failing_image_is_explained_in_the_table(files):
    status, out, _ = run("score", str(files["black"]))
    assert status == 1
    assert "FAIL (sharpness, exposure, clipping, blank)" in out
    assert "blank 0 is below the minimum 0.02" in out


def test_headshot_profile_and_requested_size(files):
    status, out, _ = run("score", "--json", "--profile", "headshot", "--size", "512x512",
                         "--reference", str(files["astronaut"]), str(files["astronaut"]))
    [item] = json.loads(out)
    assert status == 0
    assert item["dimensions"]["faces"]["value"] == 1
    assert item["dimensions"]["size"]["value"] == 0
    assert item["dimensions"]["skin_tone"]["value"] == pytest.approx(0, abs=1e-9)


def test_rules_file_applies(files, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("thresholds:\n  sharpness: {min: 100000}\n")
    status, out, _ = run("score", "--json", "--rules", str(rules), str(files["coffee"]))
    assert status == 1
    assert json.loads(out)[0]["dimensions"]["sharpness"]["threshold"] == 100000


def test_clip_model_from_the_command_line(files, clip_dir):
    status, out, _ = run("score", "--json", "--clip-model", str(clip_dir), "--prompt", "a cat", str(files["coffee"]))
    alignment = json.loads(out)[0]["dimensions"]["prompt_alignment"]
    assert -1 <= alignment["value"] <= 1
    assert status == (0 if alignment["passed"] else 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "--profile", "nope", "{astronaut}"], "unknown profile 'nope'"),
        (["score", "{missing}"], "cannot read image"),
        (["score", "{junk}"], "cannot decode"),
        (["score", "--reference", "{missing}", "{astronaut}"], "cannot read reference photo"),
        (["score", "--size", "large", "{astronaut}"], "--size must look like 1024x768"),
        (["score", "--rules", "{rules}", "{astronaut}"], "require_all"),
        (["score", "--rules", "{required}", "{astronaut}"], "requires prompt_alignment, which needs --clip-model"),
        (["score", "--clip-model", "{missing}", "{astronaut}"], "does not exist"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(files, tmp_path, argv, message):
    (tmp_path / "bad.json").write_text('{"require_all": ["sharpness"]}')
    (tmp_path / "required.json").write_text('{"require": ["prompt_alignment"]}')
    names = {k: str(v) for k, v in files.items()} | {
        "missing": str(tmp_path / "absent.png"),
        "rules": str(tmp_path / "bad.json"),
        "required": str(tmp_path / "required.json"),
    }
    status, out, err = run(*(arg.format(**names) for arg in argv))
    assert status == 2 and out == ""
    assert err.startswith("genline score: ") and message in err
    assert "Traceback" not in err


def test_argparse_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["score"]) == 2
    assert main(["score", "--help"]) == 0
    assert "usage: genline score" in capsys.readouterr().out


def test_runs_as_a_module(files):
    completed = subprocess.run(
        [sys.executable, "-m", "services.scorer.cli", "score", "--json", str(files["coffee"]), str(files["black"])],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1, completed.stderr
    assert [item["passed"] for item in json.loads(completed.stdout)] == [True, False]


@pytest.fixture(scope="module")
def judged_folder(tmp_path_factory, photos) -> Path:
    """Photos people liked in good/, slightly blurred copies they rejected in bad/: the
    blur (radius 1.5) still passes the generic sharpness minimum of 20."""
    folder = tmp_path_factory.mktemp("judged")
    for label in ("good", "bad"):
        (folder / label).mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        (folder / "good" / f"{name}.png").write_bytes(png(photos[name]))
        (folder / "bad" / f"{name}.png").write_bytes(png(blurred(photos[name], 1.5)))
    return folder


def test_calibrate_suggests_a_sharpness_threshold_that_catches_the_rejected_images(judged_folder):
    status, out, _ = run("score", "--calibrate", str(judged_folder), "--json")
    rows = {row["dimension"]: row for row in json.loads(out)}
    assert status == 0
    sharpness = rows["sharpness"]
    assert sharpness["images"] == 8 and sharpness["bad"] == 4 and sharpness["threshold"] == 20
    assert sharpness["bad_passed"] >= 1  # the threshold in force lets a rejected image through
    assert sharpness["side"] == "min" and sharpness["suggested_threshold"] > 20
    assert sharpness["suggested_separation"] == 1.0 > sharpness["separation"]
    assert rows["nsfw"]["suggested_threshold"] is None  # moderation is policy, not calibrated
    _, table, _ = run("score", "--calibrate", str(judged_folder))
    assert table.splitlines()[0].split()[:2] == ["profile", "dimension"]
    assert any(line.startswith("generic") and "sharpness" in line and "min " in line for line in table.splitlines())


@pytest.mark.parametrize("layout, message", [("no-bad", "needs DIR/good and DIR/bad"), ("empty", "holds no images")])
def test_calibrate_without_both_labelled_folders_is_a_usage_error(tmp_path, files, layout, message):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "a.png").write_bytes(files["astronaut"].read_bytes())
    if layout == "empty":
        (tmp_path / "bad").mkdir()
    status, _, err = run("score", "--calibrate", str(tmp_path))
    assert status == 2 and message in err


def test_no_paths_and_no_calibration_is_a_usage_error():
    status, _, err = run("score")
    assert status == 2 and "give image files" in err


def test_images_are_judged_against_a_subject_of_photos_in_a_folder(tmp_path):
    from tests.scorer import planted

    subject = tmp_path / "subject"
    subject.mkdir()
    for n, photo in enumerate(planted.subject_photos()[:4]):
        (subject / f"{n}.png").write_bytes(photo)
    her, stranger = tmp_path / "her.png", tmp_path / "stranger.png"
    her.write_bytes(png(planted.clean_candidates()[0]))
    stranger.write_bytes(planted.defects(0.4).another_person)
    status, out, _ = run("score", "--profile", "subject-headshot", "--subject", str(subject), "--json", str(her),
                         str(stranger))
    assert status == 1
    judged_her, judged_stranger = json.loads(out)
    assert judged_her["passed"] and len(judged_her["fingerprint"]) == 16
    identity = judged_stranger["dimensions"]["identity"]
    assert not identity["passed"] and identity["reason"].endswith("against the centroid of the subject's 4 photos")
    assert run("score", "--subject", str(tmp_path / "nowhere"), str(her))[2].startswith(
        "genline score: --subject")
