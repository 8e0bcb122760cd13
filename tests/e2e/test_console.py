"""The web console in a real headless browser (Debian's chromium, driven by Playwright; no
browser is downloaded), against the five services: sign in, submit from the form, watch the
job succeed without reloading, read every candidate's verdict; see the hold of a job kept
in `admitted` on the account page and cancel it from its page; another tenant's job is not
found; screenshots of the job page and the operator view at desktop and phone widths (saved
under artifacts/console/); no request the pages made left 127.0.0.1, and no script raised."""

import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import LEDGER_ADMIN_TOKEN
from tests.e2e.progress_entries import append_progress, progress
from tests.polling import until

playwright_api = pytest.importorskip("playwright.sync_api")

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# The pipeline runs on a machine shared by several test runs: generous waits for the job,
# short ones for what the page draws from an answer it already has.
JOB_TIMEOUT_MS = 180_000
PAGE_TIMEOUT_MS = 20_000


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no chromium on the PATH (make install-test installs Debian's)")
    return found


@contextmanager
def ordinary_scheduling() -> Iterator[None]:
    """This thread, and the processes it starts, under the default scheduling policy while it
    lasts. A test run may be started under a real-time policy (the services' workers are
    written for one: services.common.worker_processes); a browser's threads and its driver
    then spin against one another at the same real-time priority, and on two cores its pages
    hang (seen here: the driver and the browser at a core each, no page drawn)."""
    try:
        saved = os.sched_getscheduler(0), os.sched_getparam(0)
    except (AttributeError, OSError):  # not Linux: nothing to change
        saved = None
    changed = saved is not None and saved[0] != os.SCHED_OTHER
    if changed:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    try:
        yield
    finally:
        if changed:
            os.sched_setscheduler(0, *saved)


@pytest.fixture(scope="module")
def browser(platform) -> Iterator:
    """One browser for the module. Playwright's sync API keeps an event loop running on this
    thread while it is open, so the platform starts before it, and tenants are made on
    another thread (see `tenants`)."""
    with ordinary_scheduling(), playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium_path(), headless=True)
        yield launched
        launched.close()


class Console:
    """One browser context on the console, recording the host of every request its pages make
    and every error their scripts raise (a module that does not load, a name not imported)."""

    def __init__(self, browser, base_url: str) -> None:
        self.base_url, self.hosts, self.script_errors = base_url, set(), []
        self.context = browser.new_context(viewport=DESKTOP, base_url=base_url)
        self.context.set_default_timeout(PAGE_TIMEOUT_MS)
        self.context.on("request", self.record)

    def record(self, request) -> None:
        url = urlsplit(request.url)
        if url.scheme != "blob":  # a candidate fetched with the key, shown from memory
            self.hosts.add(url.hostname)

    def page(self, api_key: str | None = None):
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        if api_key:  # signed in, as the sign-in form leaves the tab
            page.add_init_script(f"sessionStorage.setItem('genline.apiKey', {json.dumps(api_key)})")
        return page


@pytest.fixture
def console(browser, platform) -> Iterator[Console]:
    opened = Console(browser, platform.ingest_url)
    yield opened
    opened.context.close()
    assert not opened.script_errors, f"the console's scripts failed: {opened.script_errors}"


@pytest.fixture
def tenants(tenant_factory):
    """`tenants(credits)`: a new tenant, made on a thread of its own (tenant_factory runs
    asyncio.run, which cannot run beside Playwright's loop)."""
    with ThreadPoolExecutor(1) as pool:
        yield lambda credits: pool.submit(tenant_factory, credits).result()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"console screenshot: {path}")
    return path


def assert_only_local_requests(console: Console) -> None:
    assert console.hosts and console.hosts <= {"127.0.0.1"}, f"requests left 127.0.0.1: {console.hosts}"


def text_of(page, testid: str) -> str:
    return page.get_by_test_id(testid).inner_text()


def test_a_job_submitted_from_the_form_is_followed_live_and_explained(console, tenants):
    tenant = tenants(1_000)
    page = console.page()
    page.goto("/console/jobs")
    page.get_by_label("API key").fill(tenant.api_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Jobs").wait_for()

    page.get_by_role("link", name="New job").first.click()
    page.get_by_label("Prompt").fill("a red bicycle against a brick wall")
    page.get_by_label("Images to deliver (K)").fill("2")
    page.get_by_label("Candidates (N)").fill("4")
    page.get_by_label("Seed").fill("11")
    page.locator("#quote").filter(has_text="credits").wait_for()  # the price, before submitting
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/console/jobs/*")
    page.evaluate("window.stillTheSamePage = true")
    page.locator('#job-state[data-state="succeeded"]').wait_for(timeout=JOB_TIMEOUT_MS)
    assert page.evaluate("window.stillTheSamePage === true")  # followed live: no reload

    job_id = page.url.rsplit("/", 1)[1]
    job = tenant.wait_settled([job_id])[job_id]
    page.get_by_test_id("billing-state").filter(has_text="settled").wait_for()
    cards = page.locator("li.candidate")
    assert cards.count() == len(job["scores"]) == 4
    page.wait_for_function("[...document.querySelectorAll('li.candidate img')].every(i => i.complete && i.naturalWidth > 0)")
    scores = {s["index"]: s for s in job["scores"]}
    rejected = [s for s in job["scores"] if s["judged"] and not s["passed"]]
    assert rejected, "the local provider paints a defect into one candidate of four"
    for score in rejected:
        card = page.locator(f'li.candidate[data-index="{score["index"]}"]')
        assert card.get_attribute("data-verdict") == "rejected"
        listed = card.locator("ul.failing li").evaluate_all("items => items.map(i => i.dataset.dimension)")
        assert listed == score["failed"] and listed
        for name in listed:
            assert f"against {format_number(score['dimensions'][name]['threshold'])}" in \
                card.locator(f'li[data-dimension="{name}"]').inner_text()
        assert card.locator("p.not-measured").get_attribute("data-dimensions") == " ".join(score["not_measured"])
        assert "rejected at tier 1 by" in card.locator("p.not-measured").inner_text()
    unjudged = [s for s in job["scores"] if not s["judged"]]
    assert unjudged, "of three sound candidates for two images, the one ranked last by Tier 1 is not needed"
    for score in unjudged:  # two better ones passed first; the scorer measured no further
        card = page.locator(f'li.candidate[data-index="{score["index"]}"]')
        assert card.get_attribute("data-verdict") == "not_judged" and card.locator("ul.failing").count() == 0
        assert "measuring stopped" in card.locator("p.not-measured").inner_text()
    selected = page.locator('li.candidate[data-verdict="selected"]').evaluate_all("cs => cs.map(c => +c.dataset.index)")
    assert sorted(selected) == sorted(job["selected"]) and all(scores[i]["passed"] for i in selected)
    assert text_of(page, "total-candidates") == str(len(job["scores"]))
    assert text_of(page, "total-passed") == str(len(job["scores"]) - len(rejected) - len(unjudged))
    assert text_of(page, "total-rejected") == str(len(rejected))
    assert text_of(page, "total-not-judged") == str(len(unjudged))
    assert text_of(page, "total-selected") == str(len(job["selected"]))
    assert text_of(page, "total-delivered") == str(len(job["outputs"])) == "2"
    for part in ("reserved", "charged", "released"):
        assert text_of(page, f"billing-{part}") == str(job["billing"][part])
    assert page.get_by_role("link", name="Download image").count() == 2
    screenshot(page, "job-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "job-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than the phone
    assert_only_local_requests(console)


def format_number(value: float) -> str:
    """As the console writes a threshold."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def test_a_job_held_before_generation_is_canceled_from_its_page(console, tenants, platform):
    tenant = tenants(1_000)
    page = console.page(tenant.api_key)
    with platform.paused("router"):  # the job waits in `admitted` until the router answers
        job_id = tenant.submit(images=1, candidates=2, seed=5)
        held = wait_reserved(tenant, job_id)
        page.goto("/console/account")  # the account shows the hold
        page.get_by_role("link", name=f"Job {job_id}").wait_for()
        assert page.get_by_test_id("account-available").inner_text() == str(1_000 - held)
        page.get_by_role("link", name=f"Job {job_id}").click()
        page.get_by_role("button", name="Cancel job").click()
        page.locator('#job-state[data-state="canceled"]').wait_for(timeout=JOB_TIMEOUT_MS)
    assert tenant.job(job_id)["state"] == "canceled"
    assert page.get_by_role("button", name="Cancel job").count() == 0
    page.locator("ol.timeline li[data-type='cancel.requested']").wait_for()
    assert_only_local_requests(console)


def wait_reserved(tenant, job_id: str, timeout_s: float = 120) -> int:
    """The credits the ledger holds for the job, once it holds them."""
    deadline = time.monotonic() + timeout_s
    while (billing := tenant.job(job_id)["billing"])["state"] != "reserved":
        assert time.monotonic() < deadline, f"job {job_id} has no reservation after {timeout_s}s: {billing}"
        time.sleep(0.3)
    return billing["reserved"]


def test_the_account_page_shows_a_bar_per_limit_of_the_plan(console, tenant_factory):
    with ThreadPoolExecutor(1) as pool:  # see `tenants`: tenants are made beside Playwright's loop
        tenant = pool.submit(tenant_factory, 1_000, "free").result()
    job_id = tenant.submit(images=3, candidates=3, seed=2)
    tenant.wait_settled([job_id])
    usage = tenant.http.get("/v1/usage").json()
    page = console.page(tenant.api_key)
    page.goto("/console/account")
    images = page.get_by_test_id("usage-images_per_day")
    images.locator("meter").wait_for()
    assert text_of(page, "usage-plan") == "free"
    meter = images.get_by_role("meter", name="Images today (UTC)")
    assert (meter.get_attribute("value"), meter.get_attribute("max")) == ("3", str(usage["plan"]["images_per_day"]))
    assert images.inner_text().endswith(f"3 of {usage['plan']['images_per_day']}")
    jobs = page.get_by_test_id("usage-concurrent_jobs").get_by_role("meter", name="Jobs in progress")
    assert (jobs.get_attribute("value"), jobs.get_attribute("max")) == ("0", str(usage["plan"]["concurrent_jobs"]))
    assert page.get_by_test_id("usage-requests_burst").locator("meter").count() == 1
    screenshot(page, "account-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "account-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert_only_local_requests(console)


def test_another_tenants_job_is_not_found(console, tenants):
    owner, stranger = tenants(0), tenants(0)
    job_id = owner.submit(images=1)  # rejected at admission (no credits): it exists all the same
    page = console.page(stranger.api_key)
    page.goto(f"/console/jobs/{job_id}")
    page.get_by_role("heading", name="Job not found").wait_for()
    assert job_id in page.get_by_role("main").inner_text()
    assert page.locator("li.candidate").count() == 0
    assert_only_local_requests(console)


def test_the_operator_view_shows_providers_and_dead_letters(console, platform):
    page = console.page()
    page.goto("/console/operator")
    page.get_by_label("Operator token").fill(LEDGER_ADMIN_TOKEN)
    page.get_by_role("button", name="Open operator view").click()
    page.locator("tr[data-provider='local-standard']").wait_for()
    page.get_by_test_id("dead-total").wait_for()
    breaker = page.locator("tr[data-provider='local-standard'] .badge").first.inner_text()
    assert breaker in ("closed", "open", "half open")
    assert page.locator("table").filter(has_text="genline.router.v1.dlq").count() == 1
    margins = page.locator("section").filter(has=page.get_by_role("heading", name="Margin per template"))
    margins.locator("table, p.muted").first.wait_for()  # a row per template, or none settled lately
    screenshot(page, "operator-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "operator-phone")
    assert_only_local_requests(console)


def test_progress_is_drawn_live_with_the_thumbnails_of_passing_candidates(console, tenants, platform):
    tenant = tenants(1_000)
    page = console.page(tenant.api_key)
    with platform.paused("delivery"), ThreadPoolExecutor(1) as writer:  # scored, held before delivery
        job_id = tenant.submit(images=2, candidates=4, seed=11)
        until(lambda: tenant.job(job_id)["state"] == "delivering", JOB_TIMEOUT_MS / 1000, f"job {job_id} delivering")
        passing = [s["index"] for s in tenant.job(job_id)["scores"] if s["passed"]]

        def write(payload: dict) -> None:  # asyncio.run cannot run beside Playwright's loop: another thread
            writer.submit(append_progress, platform, job_id, payload).result()

        page.goto("/console/jobs")  # the list draws a job's progress in its row as it comes
        page.locator(f'tr[data-job="{job_id}"]').wait_for()
        write(progress(job_id, candidates=4, generated=4, scored=2, passing=1, images=2, eta_s=65,
                       previews=tuple(passing[:1])))
        page.locator(f'tr[data-job="{job_id}"] td[data-testid="job-progress"]').filter(
            has_text="1/2 passing, 4/4 generated").wait_for()

        page.get_by_role("link", name=f"Job {job_id}").click()
        page.locator('#job-state[data-state="delivering"]').wait_for()
        page.locator('#progress-bar[data-seq]').wait_for()  # the entry written before the page opened
        assert text_of(page, "progress-passing") == "1" and text_of(page, "progress-eta") == "about 1 min 5 s left"
        page.evaluate("window.stillTheSamePage = true")
        write(progress(job_id, candidates=4, generated=4, scored=4, passing=len(passing), images=2, eta_s=1.5,
                       previews=tuple(passing[1:])))
        page.locator("#progress-counts").filter(has_text=f"{len(passing)} of 2 images passing").wait_for()
        assert page.evaluate("document.querySelector('#progress-bar').value") == min(len(passing), 2)
        assert (text_of(page, "progress-generated"), text_of(page, "progress-scored")) == ("4", "4")
        assert text_of(page, "progress-eta") == "about 2 s left"
        shown = page.locator("ul.previews li.preview").evaluate_all("items => items.map(i => Number(i.dataset.index))")
        assert shown == passing
        page.wait_for_function("[...document.querySelectorAll('li.preview img')].every(i => i.complete && i.naturalWidth > 0)")
        screenshot(page, "job-progress")
        page.set_viewport_size(PHONE)
        screenshot(page, "job-progress-phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than the phone
    page.locator('#job-state[data-state="succeeded"]').wait_for(timeout=JOB_TIMEOUT_MS)
    assert page.evaluate("window.stillTheSamePage === true")  # followed live: no reload
    assert page.locator("ol.timeline li[data-type='progress']").count() == 2
    assert_only_local_requests(console)
