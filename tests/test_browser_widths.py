"""Every page at 800 and 1400 px in a real browser (issue 15, item 10, with items 1-7 visible).

Screenshots of each page at both widths go to ``$CIARD_SHOTS`` (default /tmp/ciard-shots). At
800 px the sidebar starts collapsed; at both widths no widget label breaks inside a word
(each word of a label must lie on one line: a DOM Range over it has one client rectangle).
The Saliency page's cold visit (grid only: the push view waits for its button) and the
accuracy-vs-eps curve are timed; the figures are written to ``widths-latency.json``. One test
per page and width, each in its own session, on the module's one server.
"""
from __future__ import annotations

import time

import pytest

from browser_support import key, new_page, require_browser, save_figures, served, settled, shot

sync_api = require_browser()
expect = sync_api.expect
LATENCY: dict[str, float] = {}

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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory, "widths-runs") as server:
        yield server
    save_figures("widths-latency.json", LATENCY)


@pytest.mark.parametrize("width", [800, 1400])
@pytest.mark.parametrize("name", PAGES)
def test_page_fits_the_width(server, browser, name, width):
    """The sidebar collapsed at 800 px and open at 1400 px; no label broken inside a word."""
    page = new_page(browser, width, 1000, 240_000)
    try:
        t0 = time.time()
        page.goto(f"{server[0]}/{name}")
        expect(page.locator(READY[name]).first).to_be_visible(timeout=240_000)
        if name == "explain" and "saliency_cold_visit_s" not in LATENCY:   # the first visit: cold
            LATENCY["saliency_cold_visit_s"] = round(time.time() - t0, 2)
        settled(page, 240, spinners=True)
        expect(page.locator("[data-testid=stSidebar]")).to_have_attribute(
            "data-collapsed", "true" if width < 1100 else "false")
        assert page.evaluate(BROKEN_WORDS_JS) == [], f"{name} at {width} px"
        expect(page.locator("[data-testid=stException]")).to_have_count(0)
        shot(page, f"w{width}-{name}.png")
    finally:
        page.close()


def test_the_accuracy_eps_curve_is_drawn(server, page):
    """The default 64 images, PGD-10 at five eps, three models; timed from the button."""
    page.goto(f"{server[0]}/adversarial")
    expect(page.locator(READY["adversarial"]).first).to_be_visible(timeout=240_000)
    settled(page, 240, spinners=True)
    t0 = time.time()
    key(page, "btn_adv_curve").locator("button").first.click()
    expect(key(page, "adv_curve_fig").locator(".js-plotly-plot")).to_be_visible(timeout=600_000)
    LATENCY["accuracy_eps_curve_64_images_s"] = round(time.time() - t0, 2)
    settled(page)
    expect(page.get_by_text("A sample counts only if it is right clean and under the attack", exact=False)).to_be_visible()
    shot(page, "w1400-adversarial-curve.png")
