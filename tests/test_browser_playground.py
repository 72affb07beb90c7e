"""The Playground page in a real browser: a Streamlit server, Debian's Chromium via Playwright.

Opens the Playground from Home, lowers the steps per model with the keyboard, presses Run and
waits for the four decision-region panels (heatmaps and training points in one plotly figure),
picks a point (its eps-box, adversarial points and arrows appear), scrubs the training
snapshot slider back (the figure's title and regions change), and repeats the run over 10
seeds (the table of means with intervals and the paired verdicts appear). Timings are printed
and saved as ``$CIARD_SHOTS/latency_playground.json``; screenshots go to ``$CIARD_SHOTS`` as
``pg-*.png``.

Skipped (with the reason) when Chromium or the playwright package is missing.
"""
from __future__ import annotations

import json
import time

import pytest

from browser_support import IDLE_JS, idle, SHOTS, browser_page, require_browser, streamlit_server
from browser_support import wait as _wait

require_browser()

#: the regions figure: its title, subplot titles, heatmap traces and shapes (eps-boxes)
FIG_JS = """() => { const g = document.querySelector('.st-key-pg_regions .js-plotly-plot');
  if (!g || !g._fullData) return null;
  const heat = g._fullData.filter(t => t.type === 'heatmap');
  return {title: (g.layout.title || {}).text || '', heatmaps: heat.length,
          points: g._fullData.filter(t => t.type === 'scatter').reduce((n, t) => n + (t._length || 0), 0),
          shapes: (g.layout.shapes || []).length, annotations: (g.layout.annotations || []).map(a => a.text),
          z: heat.length ? JSON.stringify(heat[2].z) : ''}; }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("browser-pg-runs")
    with streamlit_server(runs, runs.parent / "streamlit-pg.log") as (url, proc):
        yield url


def _idle(page, timeout: float = 120) -> None:
    idle(page, timeout, settle_ms=200, js=IDLE_JS)


def _fig(page):
    return page.evaluate(FIG_JS)


def test_playground_in_a_browser(server):
    url = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with browser_page(180_000) as (_, page):
        page.goto(url + "/home")
        page.get_by_role("heading", name="CIARD Studio").wait_for()
        link = page.get_by_role("link", name="Playground: see it in 2-D")
        assert link.get_attribute("href").endswith("playground")
        page.goto(url + "/playground")
        page.get_by_role("heading", name="Playground: CIARD in 2-D").wait_for()
        _idle(page)

        # fewer steps per model (keyboard on the slider: Home = its minimum, then up to 60)
        slider = page.locator(".st-key-pg_steps input").first   # react-aria's range input
        slider.focus()
        page.keyboard.press("Home")
        for _ in range(4):
            page.keyboard.press("ArrowRight")
        page.wait_for_timeout(300)

        t0 = time.time()
        page.get_by_role("button", name="Run").click()
        fig = _wait(lambda: _fig(page), 180, "the decision-region figure")
        _idle(page)
        timings["run_to_regions_s"] = time.time() - t0
        fig = _fig(page)
        assert fig["heatmaps"] == 4 and "students 100 %" in fig["title"]
        page.get_by_text("60 steps per model").wait_for()
        assert fig["points"] >= 4 * 300                       # the training points in all four panels
        for title in ("clean teacher", "robust teacher", "student: ciard (push 1)", "student: ciard, push off"):
            assert title in fig["annotations"], title
        assert page.get_by_text("PGD-20 %").count() >= 1          # the accuracy table
        page.locator(".js-plotly-plot", has_text="Loss and its components").first.wait_for()
        page.locator(".js-plotly-plot", has_text="Distillation temperatures").first.wait_for()

        # a point: its eps-box in every panel, adversarial points and arrows, who it fools
        box = page.locator(".st-key-pg_point_input input")
        box.fill("7")
        box.press("Enter")
        _wait(lambda: (_fig(page) or {}).get("shapes") == 4, 60, "the eps-boxes of point 7")
        _idle(page)
        page.get_by_text("Point 7 (class").wait_for()
        page.screenshot(path=str(SHOTS / "pg-run.png"), full_page=True)

        # scrub: the snapshot slider back three steps -> earlier regions
        before = _fig(page)
        thumb = page.locator(".st-key-pg_frame input").first
        thumb.focus()
        t0 = time.time()
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        _wait(lambda: "students 70 %" in ((_fig(page) or {}).get("title") or ""), 60, "the 70 % snapshot")
        _idle(page)
        timings["scrub_s"] = time.time() - t0
        after = _fig(page)
        assert after["z"] != before["z"], "the student's regions did not change with the snapshot"
        thumb.focus()
        page.keyboard.press("Home")
        _wait(lambda: "teachers 0 %" in ((_fig(page) or {}).get("title") or ""), 60, "the first snapshot")
        _idle(page)

        # repeat over 10 seeds
        t0 = time.time()
        page.get_by_role("button", name="Repeat over 10 seeds").click()
        page.get_by_text("paired by seed").first.wait_for(timeout=300_000)
        _idle(page, 300)
        timings["repeat_10_seeds_s"] = time.time() - t0
        assert page.get_by_text("mean [95 % CI]").count() >= 1
        text = page.locator("[data-testid=stMain]").inner_text()
        assert "PGD-20: student: ciard (push 1) minus student: ciard, push off" in text
        assert ("no measurable difference over these seeds" in text) or ("with the first" in text)
        page.screenshot(path=str(SHOTS / "pg-repeat.png"), full_page=True)
    (SHOTS / "latency_playground.json").write_text(json.dumps(timings, indent=1))
    print("playground browser timings:", json.dumps(timings))
