"""Every page at 800 and 1400 px in a real browser (issue 15, item 10, with items 1-7 visible).

Screenshots of each page at both widths go to ``$CIARD_SHOTS`` (default /tmp/ciard-shots). At
800 px the sidebar starts collapsed; at both widths no widget label breaks inside a word
(each word of a label must lie on one line: a DOM Range over it has one client rectangle).
The Saliency page's cold visit (grid only: the push view waits for its button) and the
accuracy-vs-eps curve are timed; the figures are written to ``widths-latency.json``.
"""
from __future__ import annotations

import json
import time

import pytest

from browser_support import IDLE_NO_SPINNER_JS, idle, SHOTS, browser_page, require_browser, shot as _shot, streamlit_server

require_browser()

PAGES = ("home", "train", "runs", "adversarial", "explain", "upload", "method")
#: what each page shows once it is drawn (beyond its title)
READY = {"adversarial": ".st-key-adv_top_student .js-plotly-plot", "explain": ".st-key-chart_xp_grid .js-plotly-plot",
         "upload": ".st-key-up_file [data-testid=stFileUploader]", "runs": "h1", "train": "h1", "home": "h1", "method": "h1"}
#: labels (widget and metric) whose words are split over two lines
BROKEN_WORDS_JS = """() => {
  const out = [];
  const labels = document.querySelectorAll('[data-testid=stWidgetLabel] p, [data-testid=stMetricLabel] p');
  for (const p of labels) {
    if (!p.offsetParent) continue;               // hidden (e.g. a collapsed sidebar)
    const walker = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      const re = /\\S+/g; let m;
      while ((m = re.exec(node.textContent))) {
        const r = document.createRange();
        r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
        const tops = new Set(Array.from(r.getClientRects()).filter(x => x.width > 0).map(x => Math.round(x.top)));
        if (tops.size > 1) out.push(p.innerText.trim() + ' [' + m[0] + ']');
      }
    }
  }
  return out;
}"""
SIDEBAR_COLLAPSED_JS = ("() => { const s = document.querySelector('[data-testid=stSidebar]');"
                   " return s ? s.getAttribute('data-collapsed') : null; }")


def _idle(page, timeout: float = 120) -> None:
    idle(page, timeout, settle_ms=300, js=IDLE_NO_SPINNER_JS)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("widths-runs")
    with streamlit_server(runs, runs.parent / "streamlit-widths.log") as (url, _):
        yield url


@pytest.mark.parametrize("width", [800, 1400])
def test_pages_at_width(server, width):
    SHOTS.mkdir(parents=True, exist_ok=True)
    lat: dict[str, float] = {}
    broken: dict[str, list[str]] = {}
    with browser_page(120_000) as (_, page):
        page.set_viewport_size({"width": width, "height": 1000})
        for name in PAGES:
            t0 = time.time()
            page.goto(f"{server}/{name}")
            page.locator(READY[name]).first.wait_for(timeout=240_000)
            if name == "explain":
                lat["saliency_cold_visit_s"] = round(time.time() - t0, 2)
            _idle(page, 240)
            if width == 800:
                assert page.evaluate(SIDEBAR_COLLAPSED_JS) == "true", f"{name}: the sidebar is open at 800 px"
            else:
                assert page.evaluate(SIDEBAR_COLLAPSED_JS) == "false", f"{name}: the sidebar is closed at 1400 px"
            bad = page.evaluate(BROKEN_WORDS_JS)
            if bad:
                broken[name] = bad
            _shot(page, f"w{width}-{name}.png")
        # the accuracy-vs-eps curve: the default 64 images, PGD-10 at five eps, three models
        page.goto(f"{server}/adversarial")
        page.locator(READY["adversarial"]).first.wait_for(timeout=240_000)
        _idle(page, 240)
        t0 = time.time()
        page.locator(".st-key-btn_adv_curve button").first.click()
        page.locator(".st-key-adv_curve_fig .js-plotly-plot").wait_for(timeout=600_000)   # a loaded 2-core CPU
        lat["accuracy_eps_curve_64_images_s"] = round(time.time() - t0, 2)
        _idle(page)
        _shot(page, f"w{width}-adversarial-curve.png")
    (SHOTS / f"widths-latency-{width}.json").write_text(json.dumps(lat, indent=1))
    assert not broken, broken
