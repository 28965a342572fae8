"""The web dashboard in a real browser (headless Chromium from Debian, driven by Selenium) against a
real ``kiln api`` and worker: sign in, submit through the form and watch the job succeed without a
reload, curves with a point per epoch, a digit drawn with pointer events and a dropped PNG
predicted as the API predicts them, a 422 on its field, a job name with markup shown as text, no
console error on any page. Screenshots of every page land in the test's temporary folder (and in
KILN_SCREENSHOTS_DIR when set: that is how docs/screenshots/ is made)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from tests.integration.conftest import make_stack, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("KILN_TEST_REQUIRE_BROWSER"):
        raise RuntimeError("KILN_TEST_REQUIRE_BROWSER is set but chromium or chromedriver is missing (apt-get install chromium chromium-driver)")
    pytest.skip("the browser tests need chromium and chromedriver (Debian: apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - after the skip: selenium is useless without the browser
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

DIGITS = load_digits()
XSS = "<img src=x onerror=alert(1)>"
MLP = {"model": {"architecture": "mlp", "params": {"hidden_sizes": [64]}}, "data": {"dataset": "builtin:digits"},
       "training": {"epochs": 6}, "seed": 0}


@pytest.fixture(scope="module")
def web(request, tmp_path_factory):
    s = make_stack(request, tmp_path_factory, "embedded")
    s.start_api()
    s.start_worker()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(web) -> httpx.Client:
    """A tenant of the test's own: the browser signs in with its key."""
    return web.new_tenant()


def key_of(api: httpx.Client) -> str:
    return api.headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> list[Path]:
    folders = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("KILN_SCREENSHOTS_DIR"):
        folders.append(Path(os.environ["KILN_SCREENSHOTS_DIR"]))
        folders[-1].mkdir(parents=True, exist_ok=True)
    return folders


@pytest.fixture(scope="module")
def browser(web, api, shots):
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.get(web.base_url + "/")
    key = driver.find_element(By.ID, "api-key")
    key.send_keys(key_of(api))
    driver.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.ID, "jobs")))
    yield driver
    driver.quit()


def visit(browser, hash_route: str, ready: tuple[str, str]):
    """Opens a page by its route, as the nav links do (no reload), and waits for ``ready``."""
    browser.execute_script("location.hash = arguments[0]", hash_route)
    return WebDriverWait(browser, 30).until(ec.presence_of_element_located(ready))


def snap(browser, shots: list[Path], name: str) -> None:
    for folder in shots:
        browser.save_screenshot(str(folder / f"{name}.png"))


def console_errors(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def png_of(sample: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.round(sample * 255 / 16).astype(np.uint8), "L").resize((64, 64), Image.NEAREST).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def digits_model(api) -> str:
    job = api.post("/v1/jobs", json={**MLP, "name": "digits-for-the-browser"}).json()
    done = wait_for(api, job["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded", done
    return done["model_id"]


def test_the_key_is_kept_in_the_tab_never_in_a_url_and_the_page_allows_no_inline_script(web, api, browser):
    assert browser.execute_script("return sessionStorage.getItem('kiln.key')") == key_of(api)
    assert key_of(api) not in browser.current_url
    headers = httpx.get(web.base_url + "/").headers
    assert "script-src 'self'" in headers["content-security-policy"] and "unsafe-inline" not in headers["content-security-policy"]


def test_a_job_submitted_through_the_form_is_watched_to_success_and_drawn_a_point_per_epoch(browser, api, shots):
    visit(browser, "#/submit", (By.ID, "submit-form"))
    Select(browser.find_element(By.ID, "f-model.architecture")).select_by_value("mlp")
    hidden = browser.find_element(By.ID, "f-model.params.hidden_sizes")
    hidden.clear()
    hidden.send_keys("32")
    browser.find_element(By.ID, "f-name").send_keys("from-the-form")
    epochs = browser.find_element(By.ID, "f-training.epochs")
    epochs.clear()
    epochs.send_keys("5")
    mlp = next(a for a in api.get("/v1/architectures").json() if a["name"] == "mlp")
    assert f"{mlp['parameter_count']:,} parameters" in browser.find_element(By.ID, "parameter-count").text  # the server's, with its defaults
    snap(browser, shots, "submit")
    assert console_errors(browser) == []
    browser.find_element(By.ID, "submit-job").click()
    WebDriverWait(browser, 20).until(lambda d: "#/jobs/job_" in d.current_url)
    job_id = browser.current_url.split("#/jobs/")[1]
    assert api.get(f"/v1/jobs/{job_id}").json()["spec"]["model"]["params"]["hidden_sizes"] == [32]

    # The jobs page follows it to the end without a reload: the row's bar reaches 100 %, its badge succeeded.
    visit(browser, "#/jobs", (By.CSS_SELECTOR, f"tr[data-job='{job_id}']"))
    marker = browser.execute_script("window.notReloaded = true; return window.notReloaded")
    row = WebDriverWait(browser, 120).until(lambda d: d.find_element(By.CSS_SELECTOR, f"tr[data-job='{job_id}'][data-state='succeeded']"))
    assert row.find_element(By.CSS_SELECTOR, "[role=progressbar]").get_attribute("aria-valuenow") == "100"
    assert marker and browser.execute_script("return window.notReloaded") is True
    # The row followed the job's own event stream, not only the page's re-reads.
    streamed = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(f"/v1/jobs/{job_id}/events" in url for url in streamed), streamed[-10:]
    snap(browser, shots, "jobs")

    visit(browser, f"#/jobs/{job_id}", (By.CSS_SELECTOR, "[data-chart='loss'] path[data-series='val_loss']"))
    val_loss = browser.find_element(By.CSS_SELECTOR, "[data-chart='loss'] path[data-series='val_loss']")
    assert val_loss.get_attribute("data-points") == "5"  # one point per epoch
    assert browser.find_element(By.CSS_SELECTOR, "[data-chart='loss'] path[data-series='train_loss']")
    assert browser.find_element(By.CSS_SELECTOR, "[data-chart='accuracy'] path[data-series='val_accuracy']").get_attribute("data-points") == "5"
    assert "ended at step" in browser.find_element(By.ID, "log").text
    snap(browser, shots, "job")
    assert console_errors(browser) == []


def test_a_digit_drawn_on_the_canvas_and_a_dropped_png_are_predicted(browser, api, digits_model, shots, tmp_path):
    visit(browser, f"#/models/{digits_model}", (By.ID, "draw"))
    canvas = browser.find_element(By.ID, "draw")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    # A "1": one stroke down the middle, with pointer events as a mouse or a finger makes them.
    ActionChains(browser).move_to_element_with_offset(canvas, 0, -100).click_and_hold().move_by_offset(0, 60) \
        .move_by_offset(0, 60).move_by_offset(0, 60).release().perform()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#prediction[data-busy='0'] #predicted")))
    predicted = browser.find_element(By.ID, "predicted")
    bars = browser.find_elements(By.CSS_SELECTOR, "#prediction .prob")
    assert len(bars) == 5 and predicted.text.startswith("Prediction: ")
    drawn = predicted.find_element(By.TAG_NAME, "strong").text
    assert drawn in [str(d) for d in range(10)]
    snap(browser, shots, "model-draw")

    # A PNG of a real digit, given to the page's file input (what dropping it does), predicted as the API predicts it.
    picture = tmp_path / "seven.png"
    picture.write_bytes(png_of(DIGITS.images[7]))
    by_api = api.post(f"/v1/models/{digits_model}/predict", files={"file": ("seven.png", picture.read_bytes(), "image/png")},
                      params={"top_k": 5}).json()
    browser.find_element(By.ID, "image-file").send_keys(str(picture))
    WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#predicted strong").text == by_api["predictions"][0]
                                     and d.find_element(By.CSS_SELECTOR, "#prediction .prob strong").text == by_api["top_k"][0][0]["class"])
    shown = browser.find_element(By.CSS_SELECTOR, "#prediction .prob .num").text
    assert shown == f"{100 * by_api['top_k'][0][0]['probability']:.1f} %"
    assert by_api["predictions"][0] == "7"
    assert console_errors(browser) == []


def test_a_422_lands_on_the_field_its_path_names(browser, shots):
    visit(browser, "#/submit", (By.ID, "submit-form"))
    hidden = browser.find_element(By.ID, "f-model.params.hidden_sizes")
    hidden.clear()
    hidden.send_keys("64, 0")  # a width of 0: the API refuses it at model.params.hidden_sizes.1
    browser.find_element(By.ID, "submit-job").click()
    field = WebDriverWait(browser, 20).until(lambda d: d.find_element(By.CSS_SELECTOR, ".field.invalid"))
    assert field.get_attribute("data-field") == "model.params.hidden_sizes"
    assert "greater than or equal to 1" in field.find_element(By.CLASS_NAME, "error").text
    assert "#/submit" in browser.current_url  # nothing was submitted
    snap(browser, shots, "submit-422")
    # The one console line is the browser's note of the 422 answer itself, no script error.
    assert [m.split(" - ")[1] for m in console_errors(browser)] == ["Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"]


def test_a_job_named_with_markup_shows_as_text(browser, api):
    job = api.post("/v1/jobs", json={**MLP, "name": XSS, "training": {"epochs": 1}}).json()
    wait_for(api, job["id"], {"succeeded", "failed", "cancelled"})
    visit(browser, "#/jobs", (By.CSS_SELECTOR, f"tr[data-job='{job['id']}'] a.job-name"))
    link = browser.find_element(By.CSS_SELECTOR, f"tr[data-job='{job['id']}'] a.job-name")
    assert link.text == XSS and not link.find_elements(By.TAG_NAME, "img")
    visit(browser, f"#/jobs/{job['id']}", (By.ID, "job-name"))
    assert browser.find_element(By.ID, "job-name").text == XSS
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is what raises when no alert opened
    assert console_errors(browser) == []


def test_compare_datasets_and_models_pages_and_no_console_errors_anywhere(browser, api, digits_model, shots, tmp_path):
    ids = [j["id"] for j in api.get("/v1/jobs", params={"state": "succeeded"}).json()["items"][:2]]
    visit(browser, f"#/compare?ids={','.join(ids)}", (By.ID, "spec-diff"))
    assert browser.find_elements(By.CSS_SELECTOR, "#spec-diff tr[data-field='name']")
    assert browser.find_elements(By.CSS_SELECTOR, "[data-chart='val_loss'] path[data-series]")
    snap(browser, shots, "compare")

    np.savez(tmp_path / "digits.npz", x=DIGITS.images[:300], y=DIGITS.target[:300])
    visit(browser, "#/datasets", (By.ID, "upload"))
    browser.find_element(By.ID, "upload-files").send_keys(str(tmp_path / "digits.npz"))
    browser.find_element(By.ID, "upload-name").send_keys("three hundred digits")
    browser.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#preview img")))
    counts = {el.get_attribute("data-class"): el.find_element(By.CLASS_NAME, "num").text
              for el in browser.find_elements(By.CSS_SELECTOR, "#class-counts .prob")}
    assert counts == {str(d): str(int((DIGITS.target[:300] == d).sum())) for d in range(10)}
    snap(browser, shots, "dataset")
    visit(browser, "#/datasets", (By.CSS_SELECTOR, "#datasets tr[data-dataset]"))
    builtins = [el.get_attribute("data-builtin") for el in browser.find_elements(By.CSS_SELECTOR, "#datasets tr[data-builtin]")]
    assert builtins == [b["name"] for b in api.get("/v1/builtin-datasets").json()] == ["builtin:digits", "builtin:parity?length=N"]
    snap(browser, shots, "datasets")
    visit(browser, "#/models", (By.CSS_SELECTOR, f"#models tr[data-model='{digits_model}']"))
    snap(browser, shots, "models")
    assert console_errors(browser) == []


def test_a_gans_page_generates_a_grid(browser, api, shots):
    job = api.post("/v1/jobs", json={"name": "a-gan", "model": {"architecture": "gan"}, "data": {"dataset": "builtin:digits"},
                                     "training": {"epochs": 1}}).json()
    done = wait_for(api, job["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded", done
    visit(browser, f"#/models/{done['model_id']}", (By.CSS_SELECTOR, "#generated img"))
    picture = browser.find_element(By.CSS_SELECTOR, "#generated img")
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture))
    assert browser.execute_script("return arguments[0].naturalWidth", picture) > 0 and picture.get_attribute("src").startswith("blob:")
    snap(browser, shots, "model-gan")
    assert console_errors(browser) == []


def test_signing_out_forgets_the_key(browser):
    browser.find_element(By.ID, "sign-out").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "sign-in")))
    assert browser.execute_script("return sessionStorage.getItem('kiln.key')") is None
    assert not browser.find_element(By.ID, "nav").is_displayed()
