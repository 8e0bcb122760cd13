"""The scorer's calibration route: judged images sent as JSON give the rows `calibrate`
gives them in process; what is not a list of judged images is refused."""

import dataclasses

from starlette.applications import Starlette
from starlette.testclient import TestClient

from services.common.quality.calibration import Judged
from services.scorer import routes
from services.scorer.calibration import calibrate

THRESHOLDS = {"sharpness": 20.0, "faces": 1.0}
IMAGES = [
    Judged(profile="generic", bad=False, dimensions={"sharpness": (300.0, True), "faces": (None, False)}, threshold=THRESHOLDS),
    Judged(profile="generic", bad=True, dimensions={"sharpness": (40.0, True), "faces": (2.0, False)}, threshold=THRESHOLDS),
]


def client() -> TestClient:
    return TestClient(Starlette(routes=[routes.route()]))


def test_rows_over_the_api_are_the_rows_in_process():
    response = client().post("/internal/v1/calibration", json={"images": [i.as_json() for i in IMAGES]})
    assert response.status_code == 200, response.text
    assert response.json()["dimensions"] == [dataclasses.asdict(row) for row in calibrate(IMAGES)]


def test_a_judged_image_survives_its_json_form():
    assert [Judged.from_json(image.as_json()) for image in IMAGES] == IMAGES


def test_what_is_not_judged_images_is_refused():
    assert client().post("/internal/v1/calibration", json={"pictures": []}).status_code == 400
    assert client().post("/internal/v1/calibration", json={"images": [{"profile": "generic"}]}).status_code == 400
