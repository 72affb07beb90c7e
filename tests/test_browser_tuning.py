"""Tuning in a real browser (issue 16): the Train form's problems all at once, the Runs table
(hyperparameter columns, clone into the form), and a 2-trial sweep launched from the Sweep page on
a tiny workload: both trials listed, Optuna's figures, the best trial promoted for this session,
the trials in the Runs table. One behaviour per test, in file order, on the module's one server.

The store starts with two finished SmallCNN runs that differ in two hyperparameters. Debian's
Chromium via Playwright at 1400 px wide. Screenshots go to ``$CIARD_SHOTS`` (default
``/tmp/ciard-shots``) as ``t16-*.png``; the sweep's wall time (Start to both trials complete) is
printed and saved as ``$CIARD_SHOTS/sweep16.json``. Skipped (with the reason) when Chromium or
playwright is missing.
"""
from __future__ import annotations

import time

import pytest

from browser_support import (button, fill, key, new_page, require_browser, save_figures, select, served, settled,
                             shot)
from store_support import write_finished_run

sync_api = require_browser()
expect = sync_api.expect

#: a natural SmallCNN run of seconds: what the sweep's trials train
TINY = dict(method="natural", student="smallcnn", student_init="", epochs=1, train_subset=128, eval_size=32,
            eval_pgd_steps=1, test_size=0, precision="fp32")
TRIALS = ("browser-t000", "browser-t001")


def _two_runs(runs) -> None:
    import torch
    from ciard.models import build_model
    torch.manual_seed(0)
    write_finished_run(runs, "tiny", build_model("smallcnn"), **TINY)
    write_finished_run(runs, "tiny-push2", build_model("smallcnn"), **{**TINY, "push_weight": 2.0, "lr": 0.05})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory, "tuning-runs", _two_runs) as server:
        yield server


@pytest.fixture(scope="module")
def cloned(server, browser):
    """One session (page): the Runs page, then the newest run (tiny-push2) cloned into the form."""
    page = new_page(browser)
    page.goto(server[0] + "/runs")
    expect(page.locator("[data-testid=stDataFrame]").first).to_be_visible(timeout=180_000)
    settled(page)
    shot(page, "t16-runs-table.png")
    button(page, "runs_clone", "Clone into the form").click()
    expect(key(page, "tf_method").locator("[role=combobox]")).to_be_visible()
    settled(page)
    yield page
    page.close()


@pytest.fixture(scope="module")
def sweep(cloned):
    """The cloned session goes to the Sweep page (through the sidebar: a page load would start a
    fresh form) and starts 2 trials on the form's config, one at a time; (page, seconds taken)."""
    page = cloned
    page.get_by_role("link", name="Sweep").click()
    expect(key(page, "sweep_study").locator("input")).to_be_visible(timeout=180_000)
    expect(key(page, "sweep_queue_n").locator("input")).to_have_value("1")
    fill(page, "sweep_study", "browser")
    select(page, "sweep_base", "Train form (as last started or cloned)")
    fill(page, "sweep_trials", "2")
    settled(page)
    t0 = time.time()
    button(page, "sweep_start", "Start sweep").click()
    expect(page.get_by_text("Started sweep", exact=False)).to_be_visible()
    # the page reruns whole when the sweep process exits; "not running" is said after that
    expect(page.get_by_text("not running · 2 trials, 2 complete", exact=False)).to_be_visible(timeout=400_000)
    elapsed = time.time() - t0
    settled(page)
    save_figures("sweep16.json", {"trials": 2, "seconds": round(elapsed, 1), "workload": TINY,
                                  "what": "Start sweep pressed to '2 trials, 2 complete' shown, one trial at a time"})
    return page, elapsed


def test_the_train_form_lists_every_problem_under_its_field(server, page):
    page.goto(server[0] + "/train")
    expect(key(page, "tf_push_temp").locator("input")).to_be_visible(timeout=180_000)   # imports torch
    settled(page)
    fill(page, "tf_push_temp", "-1")
    fill(page, "tf_eps", "2")
    fill(page, "tf_lr", "-0.1")
    button(page, "train_start", "Start training").click()
    expect(page.get_by_text("3 problems, nothing started", exact=False)).to_be_visible()
    for message in ("T_push = -1 must be positive", "eps (L-inf) = 2 must be in (0, 1]",
                    "Learning rate = -0.1 must not be negative"):
        expect(page.locator("[data-testid=stAlert]", has_text=message)).to_have_count(1)
    from ciard.runs import RunStore
    assert sorted(RunStore(server[1]).names()) == ["tiny", "tiny-push2"], "a run started despite the problems"
    shot(page, "t16-train-form-errors.png")


def test_clone_copies_the_newest_runs_hyperparameters_into_the_form(cloned):
    page = cloned
    expect(key(page, "tf_train_subset").locator("input")).to_have_value("128")
    expect(key(page, "tf_student_init").locator("input")).to_have_value("")
    expect(key(page, "tf_push_weight").locator("input")).to_have_value("2")
    shot(page, "t16-train-form-cloned.png")


def test_a_two_trial_sweep_lists_both_trials_as_runs(server, sweep):
    page, _ = sweep
    table = page.locator("[data-testid=stDataFrame]")
    for run in TRIALS:
        expect(table.get_by_text(run, exact=True).first).to_be_attached()
        assert (server[1] / run / "best.pt").is_file()


def test_the_sweep_shows_optunas_figures_on_request(sweep):
    page, _ = sweep
    key(page, "sweep_figures").get_by_text("Show Optuna's figures").click()
    expect(key(page, "sweep_figures").locator("input[type=checkbox]")).to_be_checked()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    for tab in ("Optimisation history", "Parallel coordinates", "Parameter importances", "Slices"):
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name="Optimisation history").click()
    settled(page)
    shot(page, "t16-sweep-page.png")


def test_promoting_the_best_trial_changes_only_this_session(server, sweep):
    from ciard.runs import RunStore
    page, _ = sweep
    store = RunStore(server[1])
    best = max(TRIALS, key=lambda n: max(r.get("score", -1) for r in store.read_metrics(n)[0]
                                         if r.get("kind") == "epoch"))
    button(page, "sweep_promote", "Promote best trial").click()
    message = page.locator("[data-testid=stAlert]", has_text="Promoted the best trial")
    expect(message).to_contain_text(best)         # the message names the best trial
    assert store.active().get("run") != best      # the store's default is untouched
    shot(page, "t16-sweep-promoted.png")


def test_the_trials_are_runs_in_the_runs_table(server, sweep, page):
    page.goto(server[0] + "/runs")
    table = page.locator("[data-testid=stDataFrame]").first
    expect(table).to_be_visible(timeout=120_000)
    for run in TRIALS:
        expect(table.get_by_text(run, exact=True).first).to_be_attached()
    settled(page)
    shot(page, "t16-runs-table-after-sweep.png")
