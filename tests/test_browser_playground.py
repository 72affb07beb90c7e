"""The Playground page in a real browser: a Streamlit server, Debian's Chromium via Playwright.

One session (page) for the module: the Playground reached from Home, the steps per model
lowered with the keyboard, Run pressed; then each test checks one thing of that run: the four
decision-region panels (heatmaps and training points in one plotly figure) with the accuracy
table and the curves; a picked point's eps-boxes; the training-snapshot slider scrubbed back;
a repeat over 10 seeds with its intervals and paired verdicts. Timings are printed and saved as
``$CIARD_SHOTS/latency_playground.json``; screenshots go to ``$CIARD_SHOTS`` as ``pg-*.png``.

Skipped (with the reason) when Chromium or the playwright package is missing.
"""
from __future__ import annotations

import re
import time

import pytest

from browser_support import key, new_page, require_browser, save_figures, served, settled, shot

sync_api = require_browser()
expect = sync_api.expect

#: the regions figure: its title, subplot titles, heatmap traces and shapes (eps-boxes)
FIG_JS = """() => { const g = document.querySelector('.st-key-pg_regions .js-plotly-plot');
  if (!g || !g._fullData) return null;
  const heat = g._fullData.filter(t => t.type === 'heatmap');
  return {title: (g.layout.title || {}).text || '', heatmaps: heat.length,
          points: g._fullData.filter(t => t.type === 'scatter').reduce((n, t) => n + (t._length || 0), 0),
          shapes: (g.layout.shapes || []).length, annotations: (g.layout.annotations || []).map(a => a.text),
          z: heat.length ? JSON.stringify(heat[2].z) : ''}; }"""
TIMINGS: dict[str, float] = {}


def _fig(page):
    return page.evaluate(FIG_JS)


def _until_fig(page, condition: str, timeout_s: float) -> dict:
    """Wait until ``condition`` (JS on the figure ``f``) holds; the figure then."""
    page.wait_for_function(f"() => {{ const f = ({FIG_JS})(); return !!f && ({condition}); }}",
                           timeout=timeout_s * 1000)
    return _fig(page)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory, "browser-pg-runs") as server:
        yield server
    save_figures("latency_playground.json", TIMINGS)


@pytest.fixture(scope="module")
def ran(server, browser):
    """Home -> Playground, 60 steps per model, Run pressed and the regions drawn: the page."""
    page = new_page(browser, 1500, 1100, 180_000)
    page.goto(server[0] + "/home")
    link = page.get_by_role("link", name="Playground: see it in 2-D")
    expect(link).to_have_attribute("href", re.compile(r"playground$"))
    page.goto(server[0] + "/playground")
    expect(page.get_by_role("heading", name="Playground: CIARD in 2-D")).to_be_visible()
    settled(page, 120)
    slider = key(page, "pg_steps").locator("input").first     # react-aria's range input
    slider.focus()
    page.keyboard.press("Home")                                # its minimum, then up to 60
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    settled(page)
    t0 = time.time()
    page.get_by_role("button", name="Run").click()
    _until_fig(page, "f.heatmaps === 4", 180)
    settled(page, 120)
    TIMINGS["run_to_regions_s"] = round(time.time() - t0, 2)
    yield page
    page.close()


def test_a_run_draws_four_panels_with_the_training_points(ran):
    fig = _fig(ran)
    assert fig["heatmaps"] == 4 and "students 100 %" in fig["title"]
    expect(ran.get_by_text("60 steps per model")).to_be_visible()
    assert fig["points"] >= 4 * 300
    for title in ("clean teacher", "robust teacher", "student: ciard (push 1)", "student: ciard, push off"):
        assert title in fig["annotations"], title


def test_a_run_shows_the_accuracy_table_and_the_training_curves(ran):
    expect(ran.get_by_text("PGD-20 %").first).to_be_visible()
    expect(ran.locator(".js-plotly-plot", has_text="Loss and its components").first).to_be_visible()
    expect(ran.locator(".js-plotly-plot", has_text="Distillation temperatures").first).to_be_visible()


def test_a_picked_point_gets_its_eps_box_in_every_panel(ran):
    box = key(ran, "pg_point_input").locator("input")
    box.fill("7")
    box.press("Enter")
    _until_fig(ran, "f.shapes === 4", 60)
    expect(ran.get_by_text("Point 7 (class")).to_be_visible()
    settled(ran)
    shot(ran, "pg-run.png")


def test_the_snapshot_slider_shows_earlier_regions(ran):
    before = _fig(ran)
    thumb = key(ran, "pg_frame").locator("input").first
    thumb.focus()
    t0 = time.time()
    for _ in range(3):
        ran.keyboard.press("ArrowLeft")
    after = _until_fig(ran, "f.title.includes('students 70 %')", 60)
    TIMINGS["scrub_s"] = round(time.time() - t0, 2)
    assert after["z"] != before["z"], "the student's regions did not change with the snapshot"
    thumb.focus()
    ran.keyboard.press("Home")
    _until_fig(ran, "f.title.includes('teachers 0 %')", 60)
    settled(ran)


def test_a_repeat_over_10_seeds_gives_intervals_and_paired_verdicts(ran):
    t0 = time.time()
    ran.get_by_role("button", name="Repeat over 10 seeds").click()
    expect(ran.get_by_text("paired by seed").first).to_be_visible(timeout=300_000)
    settled(ran, 300)
    TIMINGS["repeat_10_seeds_s"] = round(time.time() - t0, 2)
    expect(ran.get_by_text("mean [95 % CI]").first).to_be_visible()
    main = ran.locator("[data-testid=stMain]")
    expect(main).to_contain_text("PGD-20: student: ciard (push 1) minus student: ciard, push off")
    text = main.inner_text()
    assert ("no measurable difference over these seeds" in text) or ("with the first" in text)
    shot(ran, "pg-repeat.png")
