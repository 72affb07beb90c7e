"""Training in a real browser: a Streamlit server, Debian's Chromium driven by Playwright.

One server per module with its own (empty) run store. As a person would: the Home page; the
Train page with a short CIARD run (small student, explicit tiny teachers so no teacher is
trained first); its live charts gaining points; a chart option and a sidebar widget answering
while it trains; a refresh and a second tab; Stop; the run on the Runs page. Each test checks
one of these on the module's one live run, in file order. Screenshots go to ``$CIARD_SHOTS``
(default ``/tmp/ciard-shots``); the latencies are printed and saved there as ``latency.json``.

Skipped (with the reason) when Chromium or the playwright package is missing. Playwright's own
browser download is never used: ``executable_path`` points at the system Chromium.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from browser_support import (button, fill, new_page, require_browser, save_figures, select, served, settled,
                             shot)

#: CIARD_BROWSER_DEMO=1: keep the demo preset's ResNet-20 student, batch and data (only the
#: teachers are given), to measure the latencies on the real demo workload; slower
FULL_DEMO = os.environ.get("CIARD_BROWSER_DEMO") == "1"
sync_api = require_browser()
expect = sync_api.expect

#: total points of every trace of every plotly chart on the page (plotly keeps each trace's
#: length in _fullData; its data may hold base64-packed arrays without a length)
POINTS_JS = """() => { let n = 0;
  document.querySelectorAll('.js-plotly-plot').forEach(g =>
    (g._fullData || []).forEach(t => { n += t._length || 0; }));
  return n; }"""
#: the x-axis title of the live loss chart
LOSS_X_JS = """() => { const t = document.querySelector('.st-key-live_loss .xtitle'); return t ? t.textContent : ''; }"""
LATENCY: dict[str, object] = {}


def _points(page) -> int:
    return page.evaluate(POINTS_JS)


def _more_points(page, than: int, timeout_s: float) -> int:
    page.wait_for_function(f"() => ({POINTS_JS})() > {than}", timeout=timeout_s * 1000)
    return _points(page)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory, "browser-runs") as server:
        yield server
    LATENCY["workload"] = ("demo preset (resnet20)" if FULL_DEMO
                           else "demo preset, smallcnn, 512 images, batch 64")
    save_figures("latency.json", LATENCY)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Two tiny teacher checkpoints, so the run distils at once instead of training teachers."""
    import torch
    from ciard import checkpoints
    from ciard.models import build_model
    d = tmp_path_factory.mktemp("browser-teachers")
    torch.manual_seed(0)
    return (str(checkpoints.save_model(build_model("smallcnn"), d / "clean.pt")),
            str(checkpoints.save_model(build_model("smallcnn"), d / "robust.pt")))


@pytest.fixture(scope="module")
def live(server, teachers, browser):
    """The module's run: the Train form filled in one page and Start pressed; (page, when)."""
    url, _, _ = server
    page = new_page(browser, 1500, 1100)
    page.goto(url + "/train")
    settled(page, 180)                      # the first run of a page imports torch
    expect(page.locator(".st-key-tf_eps input")).to_have_value("8/255")   # the demo preset
    fill(page, "tf_clean_teacher", teachers[0])
    fill(page, "tf_robust_teacher", teachers[1])
    if not FULL_DEMO:
        select(page, "tf_student", "smallcnn")
        for name, value in (("tf_student_init", ""), ("tf_epochs", 20), ("tf_batch_size", 64),
                            ("tf_train_subset", 512), ("tf_eval_size", 64), ("tf_test_size", 0)):
            fill(page, name, value)         # the demo's warm start is a ResNet-20: none here
    fill(page, "tf_name", "browser")
    settled(page)
    shot(page, "2-train-form.png")
    t0 = time.time()
    button(page, "train_start", "Start training").click()
    yield page, t0
    page.close()


def test_home_shows_the_studio(server, page):
    page.goto(server[0] + "/")
    expect(page.get_by_role("heading", name="CIARD Studio")).to_be_visible()
    settled(page)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    shot(page, "1-home.png")


def test_start_launches_the_configured_run_and_draws_its_first_points(server, teachers, live):
    page, t0 = live
    runs = server[1]
    _more_points(page, 0, 120)
    LATENCY["start_to_first_points_s"] = round(time.time() - t0, 2)
    launched = json.loads((runs / "browser" / "process.json").read_text())["launched"]
    first_step = json.loads((runs / "browser" / "metrics.jsonl").read_text().splitlines()[0])
    LATENCY["launch_to_first_step_record_s"] = round(first_step["time"] - launched, 2)
    cfg = json.loads((runs / "browser" / "config.json").read_text())
    assert cfg["method"]["method"] == "ciard" and cfg["model"]["clean_teacher"] == teachers[0]
    assert cfg["model"]["student"] == ("resnet20" if FULL_DEMO else "smallcnn")
    if not FULL_DEMO:
        assert cfg["data"]["train_subset"] == 512 and cfg["optim"]["batch_size"] == 64


def test_the_live_charts_gain_points_while_the_run_goes_on(live):
    page, _ = live
    first = _more_points(page, 0, 120)
    _more_points(page, first + 4, 60)      # the fragment polls every ~1.5 s
    expect(page.locator(".st-key-live_state")).to_contain_text("running")
    shot(page, "3-train-live.png")


def test_a_chart_option_redraws_the_charts_while_training(live):
    page, _ = live
    _more_points(page, 0, 120)
    assert page.evaluate(LOSS_X_JS) == "step"
    times = []
    for axis in ("epoch", "step", "epoch"):     # a widget inside the live fragment
        t1 = time.time()
        page.locator(".st-key-live_x").get_by_text(axis, exact=True).click()
        page.wait_for_function(f"() => ({LOSS_X_JS})() === '{axis}'", timeout=10_000, polling=20)
        times.append(round(time.time() - t1, 3))
    LATENCY["chart_option_response_s"] = times


def test_a_sidebar_widget_answers_while_training(live):
    page, _ = live
    t1 = time.time()
    select(page, "sb_device", "cpu")            # a full rerun, with the run still live
    expect(page.get_by_text("Device: cpu (sidebar)")).to_be_visible(timeout=10_000)
    LATENCY["sidebar_widget_response_s"] = round(time.time() - t1, 3)
    expect(page.locator(".st-key-live_state")).to_contain_text("running")


def test_a_refresh_and_a_second_tab_show_the_same_live_run(server, browser, live):
    page, _ = live
    before = _points(page)
    page.reload()                               # the points are rebuilt from the run store
    _more_points(page, max(before - 1, 0), 60)
    other = new_page(browser, 1200, 900)
    try:
        other.goto(server[0] + "/train")
        _more_points(other, 0, 60)
        expect(other.locator(".st-key-live_state")).to_contain_text("running")
    finally:
        other.close()


def test_stop_ends_the_run_with_a_checkpoint_and_offers_resume(server, live):
    page, _ = live
    button(page, "train_stop_btn", "Stop").click()
    expect(page.locator(".st-key-live_state")).to_contain_text("stopped", timeout=60_000)
    assert (server[1] / "browser" / "last.pt").is_file()
    expect(button(page, "train_resume_btn", "Resume")).to_be_visible()
    shot(page, "4-train-stopped.png")


def test_the_stopped_run_is_listed_on_the_runs_page(server, page):
    page.goto(server[0] + "/runs")
    table = page.locator("[data-testid=stDataFrame]").first
    expect(table).to_be_visible(timeout=120_000)
    expect(table.get_by_text("browser", exact=True).first).to_be_attached()
    expect(table.get_by_text("stopped", exact=True).first).to_be_attached()
    settled(page)
    shot(page, "5-runs.png")
