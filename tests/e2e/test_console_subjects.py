"""Subjects in the console, in a real headless browser: a subject made from photos dropped on
the form (four of one person, one of someone else), each photo's verdict on its page, a person in glasses told that their eyes will not be checked, an order
of it across two styles with the training line in its quote, followed to the job's page, whose
delivered images are grouped by style; screenshots under artifacts/console/."""

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from matplotlib import cbook
from PIL import Image
from skimage import data

from genline_stack.portraits import jpeg, poses
from tests.e2e.test_console import (  # noqa: F401  (fixtures)
    JOB_TIMEOUT_MS,
    assert_only_local_requests,
    browser,
    console,
    screenshot,
    text_of,
)
from tests.scorer import planted


def photo_files(folder) -> list[str]:
    paths = []
    for i, photo in enumerate(poses(Image.fromarray(data.astronaut()), 4)):
        (path := folder / f"ada-{i}.jpg").write_bytes(photo)
        paths.append(str(path))
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as grace:
        (path := folder / "someone-else.jpg").write_bytes(jpeg(grace.convert("RGB")))
    return paths[:2] + [str(path)] + paths[2:]


def test_a_subject_made_from_dropped_photos_is_ordered_across_styles(console, tenant_factory, tmp_path):  # noqa: F811
    with ThreadPoolExecutor(1) as pool:  # beside Playwright's event loop
        tenant = pool.submit(tenant_factory, 2_000).result()
    page = console.page(tenant.api_key)
    page.goto("/console/jobs")
    page.get_by_role("link", name="Subjects").click()
    page.wait_for_url("**/console/subjects")
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Photos", exact=True).set_input_files(photo_files(tmp_path))
    page.get_by_role("button", name="Create subject").click()

    page.wait_for_url("**/console/subjects/*", timeout=JOB_TIMEOUT_MS)
    page.locator("#subject-state[data-state=ready]").wait_for()
    assert text_of(page, "photos-accepted") == "4"
    assert page.get_by_test_id("waived-checks").count() == 0, "her eyes are found: nothing goes unchecked"
    refused = page.get_by_test_id("verdict-3")
    assert refused.get_attribute("data-accepted") == "false"
    assert "another person: identity" in refused.inner_text()
    assert all(page.get_by_test_id(f"verdict-{n}").get_attribute("data-accepted") == "true" for n in (1, 2, 4, 5))
    quote = page.locator("#subject-quote")
    quote.filter(has_text="to train the identity").wait_for()
    screenshot(page, "subject-desktop")

    for style in ("window", "outdoor", "dramatic", "creative"):  # two of the six styles stay
        page.get_by_label(style).uncheck()
    page.get_by_label("Pictures (K)").fill("2")
    page.get_by_label("Candidates (N)").fill("4")
    page.get_by_role("button", name="Order").click()
    page.wait_for_url("**/console/jobs/*")
    page.locator("#job-state[data-state=succeeded], #job-state[data-state=partially_succeeded],"
                 " #job-state[data-state=failed]").wait_for(timeout=JOB_TIMEOUT_MS)
    assert text_of(page, "job-styles") == "corporate, casual"
    assert text_of(page, "job-subject").startswith("Ada (person)")
    job = tenant.http.get(page.url.replace(console.base_url + "/console", "/v1")).json()
    groups = page.locator(".style-group")
    shown = [groups.nth(i).get_attribute("data-style") for i in range(groups.count())]
    assert set(shown) <= {"corporate", "casual", "other"}
    assert page.locator(".style-group .outputs li").count() == len(job["outputs"])
    screenshot(page, "subject-order-desktop")
    assert_only_local_requests(console)


def test_a_subject_in_glasses_is_told_on_its_page_that_its_eyes_will_not_be_checked(console, tenant_factory):  # noqa: F811
    photos = []
    for photo in poses(Image.fromarray(data.astronaut()), 4):
        with Image.open(io.BytesIO(photo)) as pose:
            worn = planted.in_glasses(np.asarray(pose.convert("RGB")))
        photos.append(base64.b64encode(jpeg(Image.fromarray(worn))).decode())
    with ThreadPoolExecutor(1) as pool:  # beside Playwright's event loop
        tenant = pool.submit(tenant_factory, 100).result()
        made = pool.submit(tenant.http.post, "/v1/subjects", json={"kind": "person", "name": "Ada in glasses",
                                                                   "photos": photos}, timeout=120).result()
    assert made.status_code == 201, made.text
    page = console.page(tenant.api_key)
    page.goto(f"/console/subjects/{made.json()['id']}")
    page.locator("#subject-state[data-state=ready]").wait_for()
    assert text_of(page, "waived-checks").startswith(
        "eyes_open: two open eyes are found in only 0 of the subject's 4 photos with one face")
    screenshot(page, "subject-in-glasses-desktop")
    assert_only_local_requests(console)
