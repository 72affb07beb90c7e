"""The probing pages (part 2) in a real browser: a Streamlit server, Debian's Chromium via Playwright.

Starts ``streamlit run app.py`` on a free port with its own (empty) run store, so the pages use
the shipped teachers and the zoo's students (the manifest's first, CIARD, and its no-push twin);
without zoo students the store gets two ResNet-20 runs instead (a CIARD one, promoted, and one
with ``--push-weight 0``, made from the robust teacher's weights). Then: opens the Clean-vs-adversarial
page and runs an attack by changing eps, opens the Saliency page and switches to Integrated
Gradients, uploads a real photograph and a corrupt file on the Your-image page, and opens the
Method page. Timings (attack to predictions, saliency grid, page switches) and the server's
resident memory are printed and saved as ``$CIARD_SHOTS/latency_part2.json``; screenshots go to
``$CIARD_SHOTS`` (default ``/tmp/ciard-shots``) as ``p2-*.png``.

Skipped (with the reason) when Chromium or the playwright package is missing.
"""
from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from browser_support import IDLE_JS, idle, ROOT, SHOTS, browser_page, require_browser, shot as _shot, streamlit_server
from browser_support import wait as _wait_slow
from proc_support import descendants
from store_support import write_finished_run

require_browser()



def _choose(page, key: str, option: str) -> bool:
    """Open the selectbox ``key`` and pick ``option``; False (to retry) when the list did not open,
    e.g. because a rerun replaced the widget between the click and the option's lookup."""
    page.locator(f".st-key-{key} [role=combobox]").first.click()
    opt = page.get_by_role("option", name=option, exact=True).first
    try:
        opt.wait_for(timeout=5_000)
        opt.click(timeout=5_000)
    except Exception:      # playwright TimeoutError: not open yet
        page.keyboard.press("Escape")
        return False
    return True

def _wait(cond, timeout: float, what: str, poll: float = 0.05):
    return _wait_slow(cond, timeout, what, poll)


def _zoo_student() -> str | None:
    from ciard import zoo
    names = [e.get("name") for e in zoo.entries() if e.get("role") == "student"]
    return names[0] if names else None   # what the sidebar picks: the manifest's first student


#: the shipped student the pages use; without one, two ResNet-20 student runs are made
ZOO_STUDENT = _zoo_student()
#: number of rendered plotly charts
PLOTS_JS = "() => document.querySelectorAll('.js-plotly-plot').length"


def _student_run(root: Path, name: str, **overrides) -> None:
    """A finished run whose best.pt is the shipped robust teacher's ResNet-20, as a student."""
    import torch
    from ciard import checkpoints
    model = checkpoints.load_model(ROOT / "checkpoints" / "demo-robust-resnet20.pt", "cpu")
    if overrides.get("push_weight") == 0.0:   # make the two students differ a little
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.98)
    write_finished_run(root, name, model, **overrides)


def _tree_rss_kb(pid: int) -> int:
    """VmRSS of a process and all its descendants, from /proc (kB)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text(), re.M)
        except OSError:
            continue
        total += int(m.group(1)) if m else 0
    return total


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Streamlit server on a free port whose run store holds two students (one promoted)."""
    from ciard.runs import RunStore
    runs = tmp_path_factory.mktemp("browser2-runs")
    if not ZOO_STUDENT:   # the sidebar picks the zoo's student when there is one
        _student_run(runs, "ciard-a")
        _student_run(runs, "nopush-b", push_weight=0.0)
        RunStore(runs).promote("ciard-a")
    with streamlit_server(runs, runs.parent / "streamlit2.log") as (url, proc):
        yield url, proc.pid


def _photo_png() -> bytes:
    """A real photograph: the embedded data's first test JPEG, upscaled to 256 x 256, as PNG."""
    from PIL import Image
    with zipfile.ZipFile(ROOT / "assets" / "cifar10-default.zip") as z:
        name = sorted(n for n in z.namelist() if n.startswith("test/") and n.endswith(".jpg"))[0]
        img = Image.open(io.BytesIO(z.read(name))).convert("RGB")
    buf = io.BytesIO()
    img.resize((256, 256), Image.BICUBIC).save(buf, "PNG")
    return buf.getvalue()


def _idle(page, timeout: float = 60) -> None:
    idle(page, timeout, settle_ms=150, js=IDLE_JS)


def _caption_with(page, text: str) -> str:
    loc = page.locator("[data-testid=stCaptionContainer]", has_text=text)
    return loc.first.inner_text() if loc.count() else ""


def _raw_attack_seconds() -> float:
    """PGD-10 on one test image with the shipped ResNet-20 plus three models' predictions, no UI."""
    from ciard import checkpoints, explain
    from ciard.data import load_dataset, to_float
    ms = [checkpoints.load_model(ROOT / "checkpoints" / f, "cpu").float().eval()
          for f in ("demo-clean-resnet20.pt", "demo-robust-resnet20.pt", "demo-robust-resnet20.pt")]
    test = load_dataset("default", seed=0).test
    x, y = to_float(test.x[:1]).float(), test.y[:1]
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        xa = explain.run_attack(explain.make_attack("pgd", 8 / 255, 10, 2 / 255), ms[2], x, y)
        for m in ms:
            explain.probabilities(m, x), explain.probabilities(m, xa)
        best = min(best, time.perf_counter() - t0)
    return round(best, 3)


def test_probing_pages_in_a_browser(server):
    url, pid = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    lat: dict[str, object] = {}
    with browser_page(60_000) as (_, page):
        # -- Clean vs adversarial: the default view (PGD-10, eps 8) with three models' bars
        page.goto(url + "/adversarial")
        page.get_by_role("heading", name="Clean vs adversarial").wait_for()
        _wait(lambda: page.evaluate(PLOTS_JS) >= 3, 120, "the three models' top-5 charts")
        _idle(page, 120)
        for role in ("clean teacher", "robust teacher", "student"):
            assert page.locator(".js-plotly-plot", has_text=role).count() >= 1, role
        assert "perturbation, amplified" in page.inner_text("body")
        assert "eps=8" in page.url and "attack=pgd" in page.url   # the view lives in the URL
        _shot(page, "p2-adversarial.png")

        # run an attack: eps 8 -> 9 with the keyboard on the slider, time until the new
        # adversarial image and the three models' predictions are shown
        times, computed = [], []
        for eps in (9, 10, 11):
            slider = page.locator(".st-key-adv_eps input").first   # react-aria's range input
            slider.focus()
            t0 = time.time()
            page.keyboard.press("ArrowRight")
            # the caption under the three models' bars is the last element the run writes
            done = f"PGD at eps {eps}/255 and the predictions computed in"
            _wait(lambda: _caption_with(page, done), 30, f"the eps-{eps} predictions")
            times.append(round(time.time() - t0, 3))
            computed.append(float(re.search(r"computed in ([\d.]+) s", _caption_with(page, done)).group(1)))
            _idle(page, 30)
        assert page.evaluate(PLOTS_JS) >= 3
        for role in ("clean teacher", "robust teacher", "student"):
            assert page.locator(".js-plotly-plot", has_text=role).count() >= 1, role
        assert "eps=11" in page.url
        lat["attack_pgd10_action_to_predictions_s"] = times
        lat["attack_pgd10_server_compute_s"] = computed
        _shot(page, "p2-adversarial-attacked.png")

        # -- Saliency and push loss: the grid, then Integrated Gradients
        t0 = time.time()
        page.goto(url + "/explain")
        page.get_by_role("heading", name="Saliency and the push loss").wait_for()
        _wait(lambda: page.locator(".st-key-chart_xp_grid .js-plotly-plot").count(), 120, "the saliency grid")
        _idle(page, 180)
        lat["explain_page_first_render_s"] = round(time.time() - t0, 2)   # the push view waits for a click
        t0 = time.time()
        page.get_by_role("button", name="Compare the students").click()
        page.locator(".js-plotly-plot", has_text="Distance from the fooled clean teacher").wait_for(timeout=180_000)
        _idle(page, 180)
        lat["explain_push_view_on_demand_s"] = round(time.time() - t0, 2)
        # the push-loss view compares the CIARD student with its --push-weight 0 twin by default
        box = page.locator(".st-key-xp_student_b")
        shown = box.inner_text() + " ".join(i.input_value() for i in box.locator("input").all())
        assert "push 0)" in shown, shown
        before = _caption_with(page, "cached on repeat")
        t0 = time.time()
        _wait(lambda: _choose(page, "xp_method", "Integrated Gradients"), 60, "Integrated Gradients chosen")
        _wait(lambda: _caption_with(page, "cached on repeat") not in ("", before), 60, "the IG grid")
        _idle(page, 60)
        lat["saliency_grid_integrated_gradients_s"] = round(time.time() - t0, 2)
        cap = _caption_with(page, "cached on repeat")
        m = re.search(r"\(([\d.]+) s; cached", cap)
        lat["saliency_grid_ig_server_compute_s"] = float(m.group(1)) if m else None
        grid = page.locator(".st-key-chart_xp_grid .js-plotly-plot")
        assert grid.count() >= 1
        # one shared colour scale: every map of the grid (clean teacher, robust teacher, student and
        # the student trained without push, each clean and adversarial) on one coloraxis
        axes = page.evaluate("() => { const g = document.querySelector('.st-key-chart_xp_grid .js-plotly-plot');"
                             " return (g._fullData || []).map(t => t.type + ':' + t.coloraxis); }")
        heat = [a for a in axes if a.startswith("heatmap")]   # over the images of the overlay
        assert len(heat) == 8 and set(heat) == {"heatmap:coloraxis"}, axes
        # ... whose zero is black in the browser (Streamlit swaps colours #000001..#000010)
        assert page.evaluate("() => document.querySelector('.st-key-chart_xp_grid .js-plotly-plot')"
                             "._fullLayout.coloraxis.colorscale[0][1]") == "#000000"
        _shot(page, "p2-explain-ig.png")

        # -- Your own image: a real photograph, then a corrupt file
        page.goto(url + "/upload")
        page.get_by_role("heading", name="Your own image").wait_for()
        page.set_input_files(".st-key-up_file input[type=file]", files=[{"name": "photo.png", "mimeType": "image/png",
                                                         "buffer": _photo_png()}])
        page.get_by_text("as the model sees it (32 x 32)").wait_for(timeout=60_000)
        _wait(lambda: page.evaluate(PLOTS_JS) >= 3, 60, "the upload's prediction charts")
        _idle(page)
        body = page.inner_text("body")
        assert ("holds:" in body) or ("flips:" in body)
        _shot(page, "p2-upload-photo.png")
        page.set_input_files(".st-key-up_file input[type=file]", files=[{"name": "corrupt.png", "mimeType": "image/png",
                                                         "buffer": os.urandom(4096)}])
        alert = page.locator("[data-testid=stAlert]", has_text="corrupt.png")
        alert.wait_for(timeout=30_000)
        _idle(page)
        assert "Try another file" in alert.inner_text()
        assert page.get_by_text("as the model sees it (32 x 32)").count() == 0
        assert page.locator("[data-testid=stException]").count() == 0
        _shot(page, "p2-upload-corrupt.png")

        # -- Method page
        page.goto(url + "/method")
        page.get_by_role("heading", name="The method, explained").wait_for()
        _idle(page)
        assert "push loss" in page.inner_text("body")
        page.locator("[data-testid=stGraphVizChart] svg").first.wait_for()   # the method diagram
        _shot(page, "p2-method.png")
        # a live demonstration: a preset transfer attack on the Clean-vs-adversarial page
        page.get_by_role("button", name="FGSM transferred from the clean teacher").click()
        page.get_by_role("heading", name="Clean vs adversarial").wait_for()
        _wait(lambda: _caption_with(page, "adversarial: FGSM, eps 8/255, crafted on the clean teacher"), 60,
              "the preset FGSM view")
        _idle(page)
        assert "attack=fgsm" in page.url and "source=clean_teacher" in page.url

        # -- page switches through the sidebar navigation (all caches warm by now)
        switches = {}
        for title, heading in (("Clean vs adversarial", "Clean vs adversarial"),
                               ("Saliency and push loss", "Saliency and the push loss"),
                               ("Your own image", "Your own image"),
                               ("Method explained", "The method, explained"),
                               ("Home", "CIARD Studio")):
            link = page.locator("[data-testid=stSidebarNav] a", has_text=title).first
            t0 = time.time()
            link.click()
            page.get_by_role("heading", name=heading).first.wait_for()
            _idle(page)
            switches[title] = round(time.time() - t0, 2)
        lat["page_switch_s"] = switches
        assert page.locator("[data-testid=stException]").count() == 0
    lat["server_rss_mb_after_all_pages"] = round(_tree_rss_kb(pid) / 1024, 1)
    lat["raw_pgd10_plus_predictions_s"] = _raw_attack_seconds()
    lat["workload"] = ("shipped ResNet-20 teachers (zoo defaults); student " + (f"zoo:{ZOO_STUDENT}" if ZOO_STUDENT else
                       "runs: ResNet-20 students made from the robust teacher's weights"))
    (SHOTS / "latency_part2.json").write_text(json.dumps(lat, indent=1))
    print("latencies:", lat)
    # the figures are measurements to report (goals 1 s / 5 s / 2 s / 3 GB), not pass/fail
    # criteria: a loaded machine would make timed assertions flaky
