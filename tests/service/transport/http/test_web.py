"""The page at `/`, driven in a real headless Chromium (Debian's) by Playwright."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from modelship.contracts.settings import Settings
from modelship.model.codecs.records import RecordsCodec
from modelship.model.predictor import Predictor
from modelship.serving.compose import build_serving
from modelship.transport.http.app import create_app
from tests.conftest import REPO
from tests.service.live import serve_in_thread
from tests.tools import require

# Flags this closed network needs: no background calls home, no sandbox as root, no GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOT = REPO / "docs" / "images" / "web-page.png"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = os.environ.get("MODELSHIP_CHROMIUM") or require("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def base_url(regression_predictor: Predictor) -> Iterator[str]:
    with serve_in_thread(
        create_app(build_serving(Settings.model_validate({}), regression_predictor))
    ) as url:
        yield f"http://{url}"


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    page.goto("/")
    yield page
    context.close()


def test_form_predicts_the_example_row(page: Page, regression_predictor: Predictor) -> None:
    expect(page.locator("h1")).to_have_text("insurance-charges")
    page.click("#example-button")
    expect(page.locator("#f-age")).not_to_have_value("")
    page.click("#predict-button")
    value = page.locator("#prediction-value")
    expect(value).to_be_visible()
    example = regression_predictor.card.examples[0]
    result = regression_predictor.predict(
        RecordsCodec(regression_predictor.schema).decode([example])
    )
    assert result.values is not None
    shown = float(value.inner_text().replace(",", ""))
    assert shown == pytest.approx(float(result.values[0]), abs=1e-3)
    # Each column's contribution as a bar, the largest first; the numbers add up to it.
    bars = page.locator("#explanation .bar-row")
    expect(bars).to_have_count(len(regression_predictor.card.features))
    explained = regression_predictor.explain(
        RecordsCodec(regression_predictor.schema).decode([example])
    )
    columns = [f.name for f in regression_predictor.card.features]
    contributions = dict(zip(columns, explained.contributions[0, :, 0], strict=True))
    order = sorted(columns, key=lambda c: -abs(contributions[c]))
    assert [bars.nth(i).get_attribute("data-column") for i in range(len(order))] == order
    shown_values = [float(t.replace(",", "")) for t in page.locator(".bar-value").all_inner_texts()]
    total = float(explained.base[0]) + sum(shown_values)
    assert total == pytest.approx(float(result.values[0]), rel=1e-3)


def test_typed_values_and_an_error_next_to_its_field(page: Page) -> None:
    page.fill("#f-age", "40")
    page.select_option("#f-sex", "female")
    page.fill("#f-bmi", "1e39")  # beyond float32: the server refuses it
    page.fill("#f-children", "")  # empty: imputed
    page.select_option("#f-smoker", "yes")
    page.select_option("#f-region", "southwest")
    page.click("#predict-button")
    expect(page.locator("#f-bmi-error")).to_contain_text("out of range")
    expect(page.locator("#result")).to_be_hidden()
    page.fill("#f-bmi", "30")
    page.click("#predict-button")
    expect(page.locator("#prediction-value")).to_be_visible()
    expect(page.locator("#f-bmi-error")).to_be_empty()
    expect(page.locator("#f-children-error")).to_contain_text("imputed")


def test_csv_upload_previews_and_offers_the_result(
    page: Page, insurance_csv: Path, tmp_path: Path
) -> None:
    page.set_input_files("#csv-file", str(insurance_csv))
    page.click("#csv-button")
    expect(page.locator("#csv-result")).to_be_visible()
    rows = page.locator("#csv-preview tr")
    expect(rows).to_have_count(11)
    expect(rows.first.locator("th").nth(-2)).to_have_text("predicted_charges")
    expect(rows.first.locator("th").last).to_have_text("prediction_id")
    lines = len(insurance_csv.read_text().splitlines()) - 1
    expect(page.locator("#csv-summary")).to_contain_text(f"Predicted {lines} rows")
    with page.expect_download() as download:
        page.click("#csv-download")
    saved = tmp_path / "result.csv"
    download.value.save_as(saved)
    assert len(saved.read_text().splitlines()) == lines + 1
    if os.environ.get("MODELSHIP_UPDATE_SCREENSHOT"):
        page.click("#example-button")
        page.click("#predict-button")
        expect(page.locator("#prediction-value")).to_be_visible()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_csv_errors_are_listed(page: Page, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("age,sex,bmi,children,smoker\n30,male,oops,1,no\n")
    page.set_input_files("#csv-file", str(bad))
    page.click("#csv-button")
    expect(page.locator("#csv-error")).to_contain_text("region")
    expect(page.locator("#csv-result")).to_be_hidden()


REPORT_SCREENSHOT = REPO / "docs" / "images" / "model-report.png"


def test_key_plots_beside_the_form_and_the_link_opens_the_report(
    page: Page, base_url: str, regression_predictor: Predictor
) -> None:
    report_files = regression_predictor.card.report
    assert report_files is not None
    expect(page.locator(".key-plots img")).to_have_count(sum(p.key for p in report_files.plots))
    page.wait_for_function(
        "() => [...document.querySelectorAll('.key-plots img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    requested: list[str] = []
    console: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    with page.context.expect_page() as opened:
        page.click("#report-link")
    report = opened.value
    report.on("console", lambda message: console.append(message.text))
    report.wait_for_load_state("load")
    assert report.url == f"{base_url}/model/report"
    expect(report.locator("h1")).to_have_text("Training report: insurance-charges")
    figures = report.locator("figure")
    expect(figures).to_have_count(len(report_files.plots))
    for index in range(len(report_files.plots)):
        box = figures.nth(index).locator("svg").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 150
    expect(report.locator("#importance")).to_contain_text("Feature importance")
    assert requested == [f"{base_url}/model/report"]  # everything else is inside the page
    assert console == []  # no Content-Security-Policy violation, no error
    if os.environ.get("MODELSHIP_UPDATE_SCREENSHOT"):
        report.set_viewport_size({"width": 1280, "height": 900})
        report.screenshot(path=str(REPORT_SCREENSHOT), full_page=True)


def test_live_quality_shows_labelled_predictions(page: Page) -> None:
    expect(page.locator("#quality-state")).to_contain_text("not judged yet")
    page.click("#example-button")
    page.click("#predict-button")
    expect(page.locator("#prediction-id")).to_contain_text("send its true value to /feedback")
    prediction_id = page.locator("#prediction-id").inner_text().split()[2].rstrip(":")
    answer = page.request.post("/feedback", data={"id": prediction_id, "label": 4321.5})
    assert answer.json()["joined"] == 1
    page.click("#quality-button")
    live = page.locator('#quality-table tr[data-source="live"]')
    expect(live).to_contain_text("live (1 labelled rows)")
    expect(page.locator('#quality-table tr[data-source="test"] td').nth(1)).to_have_text(
        re.compile(r"^[0-9.,-]+$")
    )
