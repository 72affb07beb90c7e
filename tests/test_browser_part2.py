"""The probing pages (part 2) in a real browser: a Streamlit server, Debian's Chromium via Playwright.

Starts ``streamlit run app.py`` on a free port with its own (empty) run store, so the pages use
the shipped teachers and the zoo's students (the manifest's first, CIARD, and its no-push twin);
without zoo students the store gets two ResNet-20 runs instead (a CIARD one, promoted, and one
with ``--push-weight 0``, made from the robust teacher's weights). Then: opens the Clean-vs-adversarial
page and runs an attack by changing eps, opens the Saliency page and switches to Integrated
Gradients, uploads a real photograph and a corrupt file on the Your-image page, and opens the
Method page; each of these is one test, on one server for the module (a session per page).
Timings (attack to predictions, saliency grid, page switches) and the server's
resident memory are printed and saved as ``$CIARD_SHOTS/latency_part2.json``; screenshots go to
``$CIARD_SHOTS`` (default ``/tmp/ciard-shots``) as ``p2-*.png``.

Skipped (with the reason) when Chromium or the playwright package is missing.
"""
from __future__ import annotations

import io
import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from browser_support import ROOT, key, new_page, require_browser, save_figures, select, served, settled, shot
from proc_support import descendants
from store_support import write_finished_run

sync_api = require_browser()
expect = sync_api.expect
LAT: dict[str, object] = {}



def _zoo_student() -> str | None:
    from ciard import zoo
    names = [e.get("name") for e in zoo.entries() if e.get("role") == "student"]
    return names[0] if names else None   # what the sidebar picks: the manifest's first student


#: the shipped student the pages use; without one, two ResNet-20 student runs are made
ZOO_STUDENT = _zoo_student()


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


def _two_students(runs: Path) -> None:
    from ciard.runs import RunStore
    if not ZOO_STUDENT:   # the sidebar picks the zoo's student when there is one
        _student_run(runs, "ciard-a")
        _student_run(runs, "nopush-b", push_weight=0.0)
        RunStore(runs).promote("ciard-a")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Streamlit server on a free port whose run store holds two students (one promoted)
    unless the zoo ships them; (url, server pid)."""
    with served(tmp_path_factory, "browser2-runs", _two_students) as (url, _, proc):
        yield url, proc.pid
        LAT["server_rss_mb_after_all_pages"] = round(_tree_rss_kb(proc.pid) / 1024, 1)
    LAT["raw_pgd10_plus_predictions_s"] = _raw_attack_seconds()
    LAT["workload"] = ("shipped ResNet-20 teachers (zoo defaults); student " + (f"zoo:{ZOO_STUDENT}" if ZOO_STUDENT else
                       "runs: ResNet-20 students made from the robust teacher's weights"))
    save_figures("latency_part2.json", LAT)


def _photo_png() -> bytes:
    """A real photograph: the embedded data's first test JPEG, upscaled to 256 x 256, as PNG."""
    from PIL import Image
    with zipfile.ZipFile(ROOT / "assets" / "cifar10-default.zip") as z:
        name = sorted(n for n in z.namelist() if n.startswith("test/") and n.endswith(".jpg"))[0]
        img = Image.open(io.BytesIO(z.read(name))).convert("RGB")
    buf = io.BytesIO()
    img.resize((256, 256), Image.BICUBIC).save(buf, "PNG")
    return buf.getvalue()


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


def _plots(page, at_least: int, timeout_s: float, within: str = "") -> None:
    page.wait_for_function(f"() => document.querySelectorAll('{within} .js-plotly-plot').length >= {at_least}",
                           timeout=timeout_s * 1000)


def _caption(page, text: str):
    return page.locator("[data-testid=stCaptionContainer]", has_text=text)


@pytest.fixture(scope="module")
def adversarial(server, browser):
    """One session on the Clean-vs-adversarial page's default view (PGD-10, eps 8)."""
    page = new_page(browser, 1500, 1100)
    page.goto(server[0] + "/adversarial")
    expect(page.get_by_role("heading", name="Clean vs adversarial")).to_be_visible()
    _plots(page, 3, 120)
    settled(page, 120)
    yield page
    page.close()


@pytest.fixture(scope="module")
def saliency(server, browser):
    """One session on the Saliency page, its grid drawn (the push view waits for its button)."""
    page = new_page(browser, 1500, 1100)
    t0 = time.time()
    page.goto(server[0] + "/explain")
    expect(page.get_by_role("heading", name="Saliency and the push loss")).to_be_visible()
    _plots(page, 1, 120, ".st-key-chart_xp_grid")
    settled(page, 180)
    LAT["explain_page_first_render_s"] = round(time.time() - t0, 2)
    yield page
    page.close()


@pytest.fixture(scope="module")
def upload(server, browser):
    page = new_page(browser, 1500, 1100)
    page.goto(server[0] + "/upload")
    expect(page.get_by_role("heading", name="Your own image")).to_be_visible()
    settled(page)
    yield page
    page.close()


def test_the_adversarial_page_shows_three_models_clean_and_attacked(adversarial):
    page = adversarial
    for role in ("clean teacher", "robust teacher", "student"):
        expect(page.locator(".js-plotly-plot", has_text=role).first).to_be_visible()
    expect(page.get_by_text("perturbation, amplified", exact=False).first).to_be_visible()
    expect(page).to_have_url(re.compile(r"eps=8.*attack=pgd|attack=pgd.*eps=8"))   # the view is in the URL
    shot(page, "p2-adversarial.png")


def test_an_eps_change_reattacks_and_updates_the_url(adversarial):
    page = adversarial
    times, computed = [], []
    for eps in (9, 10, 11):        # the keyboard on the slider (react-aria's range input)
        key(page, "adv_eps").locator("input").first.focus()
        t0 = time.time()
        page.keyboard.press("ArrowRight")
        # the caption under the three models' bars is the last element the run writes
        done = _caption(page, f"PGD at eps {eps}/255 and the predictions computed in")
        expect(done.first).to_be_visible()
        times.append(round(time.time() - t0, 3))
        computed.append(float(re.search(r"computed in ([\d.]+) s", done.first.inner_text()).group(1)))
        settled(page, 30)
    for role in ("clean teacher", "robust teacher", "student"):
        expect(page.locator(".js-plotly-plot", has_text=role).first).to_be_visible()
    expect(page).to_have_url(re.compile(r"eps=11"))
    LAT["attack_pgd10_action_to_predictions_s"] = times
    LAT["attack_pgd10_server_compute_s"] = computed
    shot(page, "p2-adversarial-attacked.png")


def test_the_push_view_compares_the_student_with_its_no_push_twin_on_demand(saliency):
    page = saliency
    t0 = time.time()
    page.get_by_role("button", name="Compare the students").click()
    expect(page.locator(".js-plotly-plot", has_text="Distance from the fooled clean teacher").first
           ).to_be_visible(timeout=180_000)
    settled(page, 180)
    LAT["explain_push_view_on_demand_s"] = round(time.time() - t0, 2)
    box = key(page, "xp_student_b")
    shown = box.inner_text() + " ".join(i.input_value() for i in box.locator("input").all())
    assert "push 0)" in shown, shown


def test_integrated_gradients_redraws_the_grid_on_one_colour_scale(saliency):
    page = saliency
    before = _caption(page, "cached on repeat").first.inner_text()
    t0 = time.time()
    select(page, "xp_method", "Integrated Gradients")
    expect(_caption(page, "cached on repeat").first).not_to_have_text(before, timeout=60_000)
    settled(page, 60)
    LAT["saliency_grid_integrated_gradients_s"] = round(time.time() - t0, 2)
    m = re.search(r"\(([\d.]+) s; cached", _caption(page, "cached on repeat").first.inner_text())
    LAT["saliency_grid_ig_server_compute_s"] = float(m.group(1)) if m else None
    # one shared colour scale: every map of the grid (clean teacher, robust teacher, student and
    # the student trained without push, each clean and adversarial) on one coloraxis
    axes = page.evaluate("() => { const g = document.querySelector('.st-key-chart_xp_grid .js-plotly-plot');"
                         " return (g._fullData || []).map(t => t.type + ':' + t.coloraxis); }")
    heat = [a for a in axes if a.startswith("heatmap")]   # over the images of the overlay
    assert len(heat) == 8 and set(heat) == {"heatmap:coloraxis"}, axes
    # ... whose zero is black in the browser (Streamlit swaps colours #000001..#000010)
    assert page.evaluate("() => document.querySelector('.st-key-chart_xp_grid .js-plotly-plot')"
                         "._fullLayout.coloraxis.colorscale[0][1]") == "#000000"
    shot(page, "p2-explain-ig.png")


def test_an_uploaded_photograph_gets_the_models_predictions(upload):
    page = upload
    page.set_input_files(".st-key-up_file input[type=file]",
                         files=[{"name": "photo.png", "mimeType": "image/png", "buffer": _photo_png()}])
    expect(page.get_by_text("as the model sees it (32 x 32)")).to_be_visible(timeout=60_000)
    _plots(page, 3, 60)
    settled(page)
    expect(page.locator("[data-testid=stMain]")).to_contain_text(re.compile(r"holds:|flips:"))
    shot(page, "p2-upload-photo.png")


def test_a_corrupt_upload_is_named_in_a_clear_message(upload):
    page = upload
    page.set_input_files(".st-key-up_file input[type=file]",
                         files=[{"name": "corrupt.png", "mimeType": "image/png", "buffer": os.urandom(4096)}])
    alert = page.locator("[data-testid=stAlert]", has_text="corrupt.png")
    expect(alert).to_contain_text("Try another file")
    settled(page)
    expect(page.get_by_text("as the model sees it (32 x 32)")).to_have_count(0)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    shot(page, "p2-upload-corrupt.png")


def test_the_method_page_draws_the_diagram_and_opens_a_preset_attack(server, page):
    page.goto(server[0] + "/method")
    expect(page.get_by_role("heading", name="The method, explained")).to_be_visible()
    expect(page.locator("[data-testid=stGraphVizChart] svg").first).to_be_visible()
    expect(page.locator("[data-testid=stMain]")).to_contain_text("push loss")
    settled(page)
    shot(page, "p2-method.png")
    page.get_by_role("button", name="FGSM transferred from the clean teacher").click()
    expect(page.get_by_role("heading", name="Clean vs adversarial")).to_be_visible()
    expect(_caption(page, "adversarial: FGSM, eps 8/255, crafted on the clean teacher").first
           ).to_be_visible(timeout=60_000)
    expect(page).to_have_url(re.compile(r"attack=fgsm"))
    expect(page).to_have_url(re.compile(r"source=clean_teacher"))


def test_the_sidebar_navigation_switches_pages(server, page):
    page.goto(server[0] + "/")
    expect(page.get_by_role("heading", name="CIARD Studio")).to_be_visible()
    settled(page)
    switches = {}
    for title, heading in (("Clean vs adversarial", "Clean vs adversarial"),
                           ("Saliency and push loss", "Saliency and the push loss"),
                           ("Your own image", "Your own image"),
                           ("Method explained", "The method, explained"),
                           ("Home", "CIARD Studio")):
        link = page.locator("[data-testid=stSidebarNav] a", has_text=title).first
        t0 = time.time()
        link.click()
        expect(page.get_by_role("heading", name=heading).first).to_be_visible()
        settled(page, 120)
        switches[title] = round(time.time() - t0, 2)
        expect(page.locator("[data-testid=stException]")).to_have_count(0)
    LAT["page_switch_s"] = switches   # the first visit of a page in this session, caches warm
