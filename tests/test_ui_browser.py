"""The dashboard at /ui, driven in headless Chromium (Debian's /usr/bin/chromium) through
Playwright against the live server: sign in, upload, train, watch, cancel, compare, activate
and roll back, predict; and what a reader's key does not get.

GRADECAST_UI_SCREENSHOTS=docs writes the screenshots of the README there (default: the
test's temporary directory).
"""

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    expect,
    sync_playwright,
)

from app.db.migrations import upgrade_to_head
from app.db.models import Role
from tests.conftest import LiveServer, Tenant, make_settings, make_tenant, start_server

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("GRADECAST_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXAMPLE_CSV = Path(__file__).resolve().parents[1] / "examples" / "cohort.csv"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The page only talks to the public API, so one database backend is enough here."""
    directory = tmp_path_factory.mktemp("ui")
    url = f"sqlite:///{directory / 'gradecast.db'}"
    upgrade_to_head(url)
    server = start_server(make_settings(url, directory))
    yield server
    server.stop()
    server.database.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is absent (apt-get install -y chromium chromium-driver)"
        if REQUIRE_BROWSER:
            pytest.fail(f"{missing}, and GRADECAST_REQUIRE_BROWSER=1 (CI) makes it mandatory")
        pytest.skip(f"browser tests skipped: {missing}")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("GRADECAST_UI_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class PageWatch:
    """What a page did that it should not: CSP violations, script errors, keys in URLs."""

    def __init__(self, page: Page, secrets: list[str]) -> None:
        self.problems: list[str] = []
        self.api_calls = 0
        self.urls: list[str] = []
        self.secrets = secrets
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "status of 40" not in message.text:
            self.problems.append(f"console error: {message.text}")

    def _request(self, request: Request) -> None:
        self.urls.append(request.url)
        if any(secret in request.url for secret in self.secrets):
            self.problems.append(f"a key in a URL: {request.url}")
        if "/ui" not in request.url:
            self.api_calls += 1
            if not request.headers.get("authorization", "").startswith("Bearer "):
                self.problems.append(f"an API call without the key: {request.url}")


def open_page(
    browser: Browser, server: LiveServer, tenant: Tenant, locale: str = "en-GB"
) -> tuple[Page, PageWatch]:
    """A new browser context whose languages (navigator.languages, Accept-Language) are
    `locale`'s."""
    context = browser.new_context(viewport={"width": 1360, "height": 860}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = PageWatch(page, list(tenant.keys.values()))
    response = page.goto(f"{server.url}/ui")
    assert response is not None
    assert response.ok
    assert page.url == f"{server.url}/ui/"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    return page, watch


def sign_in(page: Page, key: str, *, label: str = "API key", button: str = "Sign in") -> None:
    page.get_by_label(label).fill(key)
    page.get_by_role("button", name=button).click()
    expect(page.locator("#identity")).to_be_visible()


def register_course_theta(tenant: Tenant) -> None:
    with tenant.client(Role.trainer) as client:
        response = client.post(
            "/models/course/versions",
            json={
                "features": ["maths", "info", "francais"],
                "feature_labels": ["Maths", "Info", "Français"],
                "target": "concours",
                "theta": [0, 0.33, 0.33, 0.33],
                "activate": True,
                "reason": "the course's hand-set Θ",
            },
        )
        assert response.status_code == 201, response.text


def job_row(page: Page, status: str | None = None) -> Locator:
    rows = page.locator("#job-rows tr")
    return rows.filter(has=page.locator(f".status.{status}")) if status else rows


def start_training(page: Page, **fields: str) -> None:
    form = page.locator("#train-form")
    if "algorithm" in fields:
        form.get_by_label("Algorithm").select_option(fields.pop("algorithm"))
    for label, value in fields.items():
        form.get_by_label(label, exact=True).fill(value)
    form.get_by_role("button", name="Start training").click()


@pytest.mark.browser
def test_dashboard_walkthrough(ui_server: LiveServer, browser: Browser, screenshots: Path) -> None:
    tenant = make_tenant(ui_server)
    register_course_theta(tenant)
    page, watch = open_page(browser, ui_server, tenant)

    # Sign in: the key goes to sessionStorage only, and whoami's answer is shown.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.screenshot(path=screenshots / "ui-signin.png")
    page.get_by_label("API key").fill("gc_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("refused")
    sign_in(page, tenant.keys[Role.trainer])
    expect(page.locator("#whoami-organisation")).to_have_text(tenant.name)
    expect(page.locator("#whoami-role")).to_have_text("trainer")
    assert page.evaluate("sessionStorage.getItem('gradecast.apiKey')") == tenant.keys[Role.trainer]
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    assert page.context.cookies() == []

    # Cohorts: upload the example CSV (';' and decimal commas), see stats and histograms.
    upload = page.locator("#upload-form")
    upload.get_by_label("Name").fill("promo-2019-2020")
    upload.get_by_label("CSV file").set_input_files(EXAMPLE_CSV)
    upload.get_by_role("button", name="Upload").click()
    expect(page.locator("#cohort-rows tr")).to_have_count(1)
    expect(page.locator("#cohort-rows tr")).to_contain_text("200")
    detail = page.locator("#cohort-detail")
    expect(detail.locator(".column-card")).to_have_count(4)
    expect(detail.locator("[data-column=francais] h3")).to_contain_text("Français")
    expect(detail.locator(".histogram canvas")).to_have_count(4)
    expect(detail.locator("[data-column=concours]")).to_contain_text("target")
    page.screenshot(path=screenshots / "ui-cohorts.png", full_page=True)

    # Training: the course's defaults are prefilled.
    page.get_by_role("button", name="Training").click()
    form = page.locator("#train-form")
    expect(form.get_by_label("Algorithm")).to_have_value("sgd")
    expect(form.get_by_label("Batch size")).to_have_value("10")
    expect(form.get_by_label("Epochs")).to_have_value("5")
    expect(form.get_by_label("Learning rate λ")).to_have_value("0.001")

    # A gradient descent run: its row reaches 100 % and its loss curve is drawn.
    start_training(page, algorithm="gd", Iterations="2000")
    expect(job_row(page, "succeeded")).to_have_count(1)
    expect(job_row(page, "succeeded").locator("progress")).to_have_attribute("value", "100")
    chart = page.locator("#loss-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    expect(page.locator("#loss-caption")).to_contain_text("2,000 of 2,001 points")

    # A long run: live progress while it runs, then cancelled from its row.
    # (16 million single-pupil steps: about a minute of work, cancelled after a moment)
    long_run = {"Batch size": "1", "Epochs": "100000", "Record every": "1000"}
    start_training(page, algorithm="sgd", **long_run)
    running = job_row(page, "running")
    expect(running).to_have_count(1)
    expect(running.locator("progress")).not_to_have_attribute("value", "0")
    running.get_by_role("button", name=re.compile("^Cancel job")).click()
    expect(job_row(page, "cancelled")).to_have_count(1)

    # The course's SGD, compared with the gd run on one chart.
    # (125 epochs of 16 batches: as many steps as the gd run, for the comparison)
    start_training(page, **{"Batch size": "10", "Epochs": "125", "Record every": "1"})
    expect(job_row(page, "succeeded")).to_have_count(2)
    succeeded = "#job-rows tr[data-status=succeeded][data-algorithm={}]"
    sgd_job = page.locator(succeeded.format("sgd")).get_attribute("data-job")
    gd_job = page.locator(succeeded.format("gd")).get_attribute("data-job")
    assert sgd_job
    assert gd_job
    page.get_by_label("Run", exact=True).select_option(sgd_job)
    page.get_by_label("Compare with").select_option(gd_job)
    expect(chart.locator(".u-legend .u-series")).to_have_count(5)  # x + 2 runs × (train, val)
    expect(page.locator("#loss-caption")).to_contain_text("Compared with")
    expect(chart.locator("canvas")).to_have_count(1)
    page.get_by_label("Log scale").uncheck()
    expect(chart).to_have_attribute("data-scale", "linear")
    expect(chart.locator("canvas")).to_have_count(1)
    page.get_by_label("Log scale").check()
    expect(chart).to_have_attribute("data-scale", "log")
    page.screenshot(path=screenshots / "ui-training.png", full_page=True)

    # Models: activate the other version, then roll back.
    page.get_by_role("button", name="Models").click()
    page.locator("#view-models").get_by_label("Model", exact=True).select_option("concours")
    versions = page.locator("#version-rows tr")
    expect(versions).to_have_count(2)
    expect(page.locator("#version-rows .status.active")).to_have_count(1)
    expect(versions.first).to_contain_text("Français")
    activations = page.locator("#activation-rows tr")
    before = activations.count()
    for _ in range(2):
        button = page.locator("#version-rows button")
        expect(button).to_have_count(1)
        version = button.get_attribute("aria-label")
        assert version is not None
        number = version.rsplit(" ", 1)[1]
        button.click()
        active = page.locator(f"#version-rows tr[data-version='{number}'] .status.active")
        expect(active).to_have_count(1)
        expect(activations).to_have_count(before + 1)
        before += 1
    expect(activations.filter(has_text="rollback to v1")).to_have_count(1)
    page.screenshot(path=screenshots / "ui-models.png", full_page=True)

    # Predict: the course's new pupil (13, 14, 11) with the hand-set Θ gives 12.54.
    page.get_by_role("button", name="Predict").click()
    predict = page.locator("#predict-form")
    predict.get_by_label("Model").select_option("course")
    expect(predict.get_by_label("Version").locator("option")).to_have_text(["v1 (active)"])
    predict.get_by_label("Maths").fill("13")
    predict.get_by_label("Info").fill("14")
    predict.get_by_label("Français").fill("11")
    predict.get_by_role("button", name="Predict").click()
    expect(page.locator("#prediction-value")).to_contain_text("12.54")
    expect(page.locator("[data-contribution=maths]")).to_have_text("4.29")
    expect(page.locator("[data-contribution=info]")).to_have_text("4.62")
    expect(page.locator("[data-contribution=francais]")).to_have_text("3.63")
    expect(page.locator("#predict-result .bar")).to_have_count(4)
    expect(page.locator("#predict-result")).to_contain_text("No prediction interval")

    # The learned versions are gd and sgd runs on raw grades that stopped short of the
    # least-squares Θ: no interval, rather than one that would not cover 95%.
    predict.get_by_label("Model").select_option("concours")
    expect(predict.get_by_label("Version").locator("option")).to_have_count(2)
    predict.get_by_role("button", name="Predict").click()
    expect(page.locator("#predict-result h2")).to_contain_text(re.compile(r"concours v\d"))
    expect(page.locator("#predict-result")).to_contain_text("No prediction interval")
    page.screenshot(path=screenshots / "ui-predict.png", full_page=True)

    # Signing out forgets the key.
    page.get_by_role("button", name="Sign out").click()
    assert page.evaluate("sessionStorage.length") == 0
    assert watch.api_calls > 0
    assert watch.problems == []


@pytest.mark.browser
def test_reader_sees_stats_but_no_pupil_rows_or_trainer_buttons(
    ui_server: LiveServer, browser: Browser
) -> None:
    tenant = make_tenant(ui_server)
    register_course_theta(tenant)
    with tenant.client(Role.trainer) as client:
        response = client.post(
            "/cohorts?name=promo",
            content=EXAMPLE_CSV.read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        assert response.status_code == 201, response.text
    page, watch = open_page(browser, ui_server, tenant)
    sign_in(page, tenant.keys[Role.reader])
    expect(page.locator("#whoami-role")).to_have_text("reader")
    expect(page.locator("#upload-form")).to_be_hidden()
    detail = page.locator("#cohort-detail")
    expect(detail.locator(".column-card")).to_have_count(4)
    expect(detail).to_contain_text("need a trainer key")
    assert detail.locator(".histogram").count() == 0

    page.get_by_role("button", name="Training").click()
    expect(page.locator("#train-form")).to_be_hidden()
    page.get_by_role("button", name="Models").click()
    expect(page.locator("#version-rows tr")).to_have_count(1)
    assert page.locator("#version-rows button").count() == 0

    # Evaluation: a reader reads the leaderboard, but may not run an evaluation.
    page.get_by_role("button", name="Evaluation").click()
    expect(page.locator("#evaluation-result")).to_contain_text("not been evaluated on this cohort")
    expect(page.locator("#leaderboard-empty")).to_be_visible()
    expect(page.locator("#evaluation-form").get_by_role("button", name="Evaluate")).to_be_hidden()
    assert watch.problems == []
    assert not any("/students" in url for url in watch.urls)


def test_dashboard_headers_and_schema(ui_server: LiveServer) -> None:
    with httpx.Client(base_url=ui_server.url, timeout=30) as client:
        redirect = client.get("/ui")
        assert redirect.status_code == 307
        assert redirect.headers["location"] == "/ui/"
        for path in ("/ui/", "/ui/app.js", "/ui/style.css", "/ui/vendor/uplot/uPlot.iife.min.js"):
            response = client.get(path)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            assert "default-src 'self'" in policy
            assert "script-src 'self'" in policy
            assert "unsafe-inline" not in policy
            assert response.headers["x-content-type-options"] == "nosniff"
        page = client.get("/ui/").text
        assert "<script>" not in page  # every script is a file
        assert "http://" not in page  # nothing from a CDN
        assert "https://" not in page
        paths = client.get("/openapi.json").json()["paths"]
        assert not [path for path in paths if path.startswith("/ui")]


EXPORT_CSV = EXAMPLE_CSV.parent / "pronote-export.csv"
CLASS_LIST_CSV = EXAMPLE_CSV.parent / "classe-2020-2021.csv"


@pytest.mark.browser
def test_a_school_export_and_a_class_list(ui_server: LiveServer, browser: Browser) -> None:
    """The upload form takes an export as it is (names, INE, class, Abs…) and shows the
    import report; the predict screen takes a class list as CSV and offers the answer."""
    tenant = make_tenant(ui_server)
    register_course_theta(tenant)
    page, watch = open_page(browser, ui_server, tenant)
    sign_in(page, tenant.keys[Role.trainer])

    upload = page.locator("#upload-form")
    upload.get_by_label("Name").fill("promo-2019-2020")
    upload.get_by_label("CSV file").set_input_files(EXPORT_CSV)
    upload.get_by_label("Id column").fill("INE")
    upload.get_by_label("Feature columns").fill("Maths,Info,Français")
    upload.get_by_label("Group column").fill("Classe")
    upload.get_by_label("Special marks").select_option("drop")
    upload.get_by_role("button", name="Upload").click()
    report = page.locator("#import-report")
    expect(report).to_contain_text("37 of 40 pupils kept.")
    expect(report).to_contain_text("3 left out for a special mark (rows 4, 9, 22).")
    expect(report).to_contain_text("Maths: Abs × 1.")
    expect(report).to_contain_text("Maths: 1 marks written a/b, rescaled.")
    expect(report).to_contain_text("Columns not read: Nom, Prénom.")
    expect(page.locator("body")).not_to_contain_text("FICTIF")

    page.get_by_role("button", name="Predict").first.click()
    form = page.locator("#predict-csv-form")
    form.get_by_label("CSV file").set_input_files(CLASS_LIST_CSV)
    form.get_by_label("Id column").fill("INE")
    form.get_by_label("Feature columns").fill("Maths,Info,Français")
    form.get_by_role("button", name="Predict").click()
    expect(page.locator("#predict-csv-result")).to_contain_text(
        "30 pupils answered, 1 without a prediction."
    )
    with page.expect_download() as download_info:
        page.locator("#predict-csv-download").click()
    download = download_info.value
    assert download.suggested_filename == "classe-2020-2021-predictions.csv"
    answer = Path(download.path()).read_text(encoding="utf-8")
    assert answer.splitlines()[0].startswith("INE;Maths;Info;Français;prediction")
    assert "FICTIF" not in answer
    assert watch.problems == []


FRENCH_DATE = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}$")
ENGLISH_DATE = re.compile(r"^\d{2}/\d{2}/\d{4}, \d{2}:\d{2}:\d{2}$")


def predict_course_pupil(page: Page, button: str) -> None:
    page.locator(".tab[data-view=predict]").click()
    form = page.locator("#predict-form")
    form.locator("#predict-model").select_option("course")
    form.locator("#grade-maths").fill("13")
    form.locator("#grade-info").fill("14")
    form.locator("#grade-francais").fill("11")
    form.get_by_role("button", name=button).click()


@pytest.mark.browser
def test_grades_being_typed_survive_another_load_and_not_a_sign_out(
    ui_server: LiveServer, browser: Browser
) -> None:
    """Loading the versions again (the model chosen while the screen still loads) keeps the
    very input being typed into, its focus and its value; signing out forgets the grades."""
    tenant = make_tenant(ui_server)
    register_course_theta(tenant)
    page, watch = open_page(browser, ui_server, tenant)
    sign_in(page, tenant.keys[Role.trainer])
    page.locator(".tab[data-view=predict]").click()
    maths = page.locator("#grade-maths")
    maths.fill("13")
    maths.focus()
    typed_into = maths.element_handle()
    for _ in range(2):
        with page.expect_response(lambda r: "/models/course/versions" in r.url):
            page.locator("#predict-model").dispatch_event("change")
    page.wait_for_function("document.querySelectorAll('#predict-version option').length === 1")
    assert typed_into.evaluate("input => input.isConnected && document.activeElement === input")
    expect(maths).to_have_value("13")

    page.locator("#sign-out").click()
    sign_in(page, tenant.keys[Role.trainer])
    page.locator(".tab[data-view=predict]").click()
    expect(page.locator("#predict-version")).to_have_value("1")
    expect(page.locator("#grade-maths")).to_have_value("")
    assert watch.problems == []


@pytest.mark.browser
def test_a_french_browser_gets_french_and_the_switch_is_remembered(
    ui_server: LiveServer, browser: Browser
) -> None:
    """navigator.languages chooses French; the switch chooses English over it, redraws the
    shown screen in English, and is remembered (localStorage) across a reload."""
    tenant = make_tenant(ui_server)
    register_course_theta(tenant)
    page, watch = open_page(browser, ui_server, tenant, locale="fr-FR")
    switch = page.locator("#language-switch")
    expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "fr"
    expect(switch.locator("[data-language=fr]")).to_have_attribute("aria-pressed", "true")
    expect(switch.locator("[data-language=en]")).to_have_attribute("aria-pressed", "false")
    sign_in(page, tenant.keys[Role.trainer], label="Clé d'API", button="Se connecter")
    expect(page.locator("#whoami-role")).to_have_text("entraîneur")
    expect(page.locator("#tabs")).to_contain_text("Évaluation")

    # The cohorts screen in French, its date written the French way.
    upload = page.locator("#upload-form")
    upload.get_by_label("Nom").fill("promo-2019-2020")
    upload.get_by_label("Fichier CSV").set_input_files(EXAMPLE_CSV)
    upload.get_by_role("button", name="Importer").click()
    expect(page.locator("#notice")).to_have_text("promo-2019-2020 importée\u00a0: 200 élèves.")
    detail = page.locator("#cohort-detail")
    expect(detail).to_contain_text("200 élèves · notes dans [0, 20]")
    expect(detail.locator("[data-column=concours]")).to_contain_text("cible")
    expect(detail.locator("[data-column=concours] dt").first).to_have_text("moyenne")
    expect(page.locator("#cohort-rows td").nth(2)).to_have_text(FRENCH_DATE)

    # Predict: 12,54 with a decimal comma, the contributions too.
    predict_course_pupil(page, "Prédire")
    expect(page.locator("#prediction-value")).to_contain_text("12,54")
    expect(page.locator("[data-contribution=maths]")).to_have_text("4,29")
    expect(page.locator("#predict-result")).to_contain_text("Pas d'intervalle de prédiction")
    assert page.evaluate("localStorage.getItem('gradecast.language')") is None

    # The switch: the shown screen is drawn again in English, and the choice is kept.
    switch.get_by_role("button", name="English").click()
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(page.get_by_role("heading", name="Predict", exact=True)).to_be_visible()
    expect(page.locator("#prediction-value")).to_contain_text("12.54")
    expect(page.locator("[data-contribution=maths]")).to_have_text("4.29")
    expect(page.locator("#predict-result")).to_contain_text("No prediction interval")
    expect(page.locator("#whoami-role")).to_have_text("trainer")
    expect(switch.locator("[data-language=en]")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("localStorage.getItem('gradecast.language')") == "en"

    # A reload keeps English over the browser's French (the key stays in the tab).
    page.reload()
    expect(page.locator("#identity")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.locator(".tab[data-view=cohorts]").click()
    expect(page.locator("#cohort-rows td").nth(2)).to_have_text(ENGLISH_DATE)
    expect(page.locator("#cohort-detail")).to_contain_text("200 pupils · grades in [0, 20]")

    # And back to French, remembered too.
    switch.get_by_role("button", name="Français").click()
    expect(page.get_by_role("heading", name="Cohortes importées")).to_be_visible()
    assert page.evaluate("localStorage.getItem('gradecast.language')") == "fr"
    assert page.evaluate("localStorage.getItem('gradecast.apiKey')") is None  # the key: never
    assert watch.problems == []


def french_number(value: float, digits: int) -> str:
    """What Intl writes for fr-FR: a decimal comma, and U+2212 or '-' for a minus."""
    return f"{value:.{digits}f}".replace(".", ",")


def wait_for_job(tenant: Tenant, job_id: str) -> int:
    with tenant.client(Role.trainer) as client:
        for _ in range(600):
            job = client.get(f"/jobs/{job_id}").json()
            if job["status"] not in ("queued", "running"):
                assert job["status"] == "succeeded", job
                return int(job["model_version"])
            time.sleep(0.1)
    raise AssertionError("the job did not finish")


def two_school_years(tenant: Tenant) -> tuple[str, int]:
    """promo-2019-2020 (the example cohort), a closed-form version of `course` trained on it
    besides the course's hand-set Θ (v1, active), and promo-2020-2021, the Pronote export with
    its results and its classes. Returns the later cohort's id and the trained version."""
    register_course_theta(tenant)
    with tenant.client(Role.trainer) as client:
        first = client.post(
            "/cohorts?name=promo-2019-2020",
            content=EXAMPLE_CSV.read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        assert first.status_code == 201, first.text
        later = client.post(
            "/cohorts?name=promo-2020-2021&special_marks=drop&id_column=INE"
            "&features=Maths,Info,Fran%C3%A7ais&group_column=Classe",
            content=EXPORT_CSV.read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        assert later.status_code == 201, later.text
        job = client.post(
            "/jobs",
            json={
                "cohort_id": first.json()["id"],
                "model": "course",
                "algorithm": "closed_form",
                "activate": "never",
            },
        )
        assert job.status_code == 202, job.text
    return later.json()["id"], wait_for_job(tenant, job.json()["id"])


@pytest.mark.browser
def test_the_evaluation_screen_in_french_then_english(
    ui_server: LiveServer, browser: Browser, screenshots: Path
) -> None:
    """A French browser: evaluate two versions on the later cohort, read the figures (as the
    API computed them, with decimal commas), the charts, the groups, the leaderboard and the
    card; then the same screen in English."""
    tenant = make_tenant(ui_server)
    later, trained = two_school_years(tenant)
    page, watch = open_page(browser, ui_server, tenant, locale="fr-FR")
    sign_in(page, tenant.keys[Role.trainer], label="Clé d'API", button="Se connecter")
    page.get_by_role("button", name="Évaluation").click()
    expect(
        page.get_by_role("heading", name="Évaluation sur une cohorte ultérieure")
    ).to_be_visible()
    form = page.locator("#evaluation-form")
    form.get_by_label("Modèle").select_option("course")
    form.get_by_label("Version").select_option(str(trained))
    # The cohort the version was trained on is not offered; the later one is.
    cohort = form.get_by_label("Cohorte ultérieure, avec ses résultats")
    expect(cohort.locator("option")).to_have_text(["promo-2020-2021 (37 élèves)"])
    expect(page.locator("#leaderboard-empty")).to_be_visible()
    form.get_by_role("button", name="Évaluer").click()
    expect(page.locator("#notice")).to_have_text(f"Version {trained} évaluée sur promo-2020-2021.")

    with tenant.client(Role.trainer) as client:
        stored = client.get(f"/models/course/versions/{trained}/evaluations").json()["data"]
    [evaluation] = stored
    figures = page.locator("#evaluation-result")
    expect(figures.locator("[data-figure=n]")).to_have_text("37")
    for name in ("rmse", "mae", "r2"):
        expect(figures.locator(f"[data-figure={name}]")).to_have_text(
            french_number(evaluation[name], 3)
        )
    bias = evaluation["mean_error"]
    expect(figures.locator("[data-figure=mean_error]")).to_have_text(
        re.compile("^[-−]?" + re.escape(french_number(abs(bias), 3)) + "$")
    )
    expect(page.locator("#evaluation-bias")).to_contain_text(
        f"trop {'hautes' if bias > 0 else 'basses'} de {french_number(abs(bias), 2)} points"
    )
    expect(figures.locator("[data-figure=extrapolated]")).to_have_text(
        str(evaluation["extrapolated"])
    )
    scatter = page.locator("#evaluation-scatter")
    expect(scatter.locator("canvas")).to_have_count(1)
    expect(scatter).to_have_attribute("data-points", str(len(evaluation["sample"])))
    expect(page.locator("#scatter-caption")).to_contain_text(
        f"{len(evaluation['sample'])} élèves sur 37"
    )
    coverage = evaluation["interval_coverage"]
    assert coverage is not None  # a closed-form fit has its interval
    expect(figures.locator("[data-figure=interval_coverage]")).to_have_text(
        french_number(100 * coverage, 1) + "\u202f%"
    )
    expect(page.locator("#evaluation-residuals canvas")).to_have_count(1)
    groups = page.locator("#evaluation-groups-card")
    expect(groups.locator("#evaluation-groups canvas")).to_have_count(1)
    expect(groups.locator("#group-rows tr")).to_have_count(2)
    for label, group in evaluation["by_group"].items():
        row = groups.locator(f"#group-rows tr[data-group='{label}']")
        expect(row.locator("td").nth(0)).to_have_text(str(group["n"]))
        expect(row.locator("td").nth(1)).to_have_text(french_number(group["rmse"], 3))
    expect(groups.locator(".u-legend")).to_contain_text("biais")

    # The hand-set Θ too: the leaderboard puts the better RMSE first and marks the active one.
    form.get_by_label("Version").select_option("1")
    form.get_by_role("button", name="Évaluer").click()
    board = page.locator("#leaderboard-rows tr")
    expect(board).to_have_count(2)
    with tenant.client(Role.reader) as client:
        ranked = client.get(f"/models/course/evaluations?cohort_id={later}").json()["data"]
    assert [row["rmse"] for row in ranked] == sorted(row["rmse"] for row in ranked)
    expect(board.locator("td:nth-child(2) b")).to_have_text(
        [f"v{row['version']}" for row in ranked]
    )
    expect(page.locator("#leaderboard-rows tr[data-version='1'] .status.active")).to_have_text(
        "active"
    )
    expect(figures).to_contain_text("Cette version n'a pas d'intervalle de prédiction")

    # Choosing the trained version again shows its stored evaluation, without running it.
    form.get_by_label("Version").select_option(str(trained))
    expect(figures.locator("[data-figure=rmse]")).to_have_text(french_number(evaluation["rmse"], 3))
    expect(page.locator("#leaderboard-rows tr.selected")).to_have_attribute(
        "data-version", str(trained)
    )
    page.screenshot(path=screenshots / "ui-evaluation.png", full_page=True)

    # The model card, in French (the page's language), saved as a file.
    with page.expect_download() as download_info:
        page.locator("#evaluation-card").click()
    download = download_info.value
    assert download.suggested_filename == f"course-v{trained}-fiche-modele.html"
    card = Path(download.path()).read_text(encoding="utf-8")
    assert card.startswith('<!DOCTYPE html>\n<html lang="fr">')
    assert repr(evaluation["rmse"]) in card  # the figures as the API gives them

    # English: the shown evaluation is drawn again, in English words and numbers.
    page.locator("#language-switch").get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Evaluation on a later cohort")).to_be_visible()
    expect(figures.locator("[data-figure=rmse]")).to_have_text(f"{evaluation['rmse']:.3f}")
    expect(figures.locator("[data-figure=interval_coverage]")).to_have_text(
        f"{100 * coverage:.1f}%"
    )
    expect(page.locator("#evaluation-bias")).to_contain_text(
        f"{abs(bias):.2f} points too {'high' if bias > 0 else 'low'}"
    )
    expect(page.locator("#evaluation-groups-card .u-legend")).to_contain_text("bias")
    with page.expect_download() as download_info:
        page.locator("#leaderboard-rows").get_by_role(
            "button", name=f"Download the model card of version {trained}"
        ).click()
    assert download_info.value.suggested_filename == f"course-v{trained}-model-card.html"
    card = Path(download_info.value.path()).read_text(encoding="utf-8")
    assert card.startswith('<!DOCTYPE html>\n<html lang="en">')
    expect(page.locator("#leaderboard-rows tr[data-version='1'] .status.active")).to_have_text(
        "active"
    )
    assert watch.problems == []


def test_the_readme_shows_every_screenshot_the_tests_take() -> None:
    """The README links each docs/ui-*.png, and each one it links exists."""
    root = EXAMPLE_CSV.parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\(docs/(ui-[a-z-]+\.png)\)", readme))
    taken = set(re.findall(r'screenshots / "(ui-[a-z-]+\.png)"', Path(__file__).read_text()))
    on_disk = {path.name for path in (root / "docs").glob("ui-*.png")}
    assert linked == taken == on_disk


@pytest.fixture(scope="module")
def ui_low_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """As ui_server, with evaluations of more than 10 pupils made jobs (202)."""
    directory = tmp_path_factory.mktemp("ui-low")
    url = f"sqlite:///{directory / 'gradecast.db'}"
    upgrade_to_head(url)
    server = start_server(make_settings(url, directory, sync_evaluation_limit=10))
    yield server
    server.stop()
    server.database.engine.dispose()


def test_an_evaluation_above_the_limit_is_followed_through_its_job(
    ui_low_server: LiveServer, browser: Browser
) -> None:
    """The 202 of a cohort above GRADECAST_SYNC_EVALUATION_LIMIT: the screen waits for the
    job and shows its evaluation; the jobs table shows the job as an evaluation."""
    tenant = make_tenant(ui_low_server)
    _, trained = two_school_years(tenant)
    page, watch = open_page(browser, ui_low_server, tenant)
    sign_in(page, tenant.keys[Role.trainer])
    page.get_by_role("button", name="Evaluation").click()
    form = page.locator("#evaluation-form")
    form.get_by_label("Model").select_option("course")
    form.get_by_label("Version").select_option(str(trained))
    form.get_by_role("button", name="Evaluate").click()
    expect(page.locator("#notice")).to_have_text(f"Version {trained} evaluated on promo-2020-2021.")
    expect(page.locator("#evaluation-result [data-figure=n]")).to_have_text("37")
    with tenant.client(Role.trainer) as client:
        jobs = client.get("/jobs").json()["data"]
    assert [job["kind"] for job in jobs] == ["evaluation", "training"]

    page.get_by_role("button", name="Training").click()
    row = page.locator("#job-rows tr[data-kind=evaluation]")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row.locator("td").nth(2)).to_have_text("evaluation")
    expect(row.get_by_role("button", name="Loss")).to_have_count(0)
    expect(page.locator("#loss-job option")).to_have_count(1)  # the training job only
    assert watch.problems == []
