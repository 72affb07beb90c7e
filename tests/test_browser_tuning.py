"""Tuning in a real browser (issue 16): the Train form's problems all at once, the Runs table
(hyperparameter columns, best by, clone into the form), and a 2-trial sweep launched from the
Sweep page on a tiny workload: both trials listed, Optuna's figures opened, the best promoted.

A Streamlit server on a free port with its own run store; Debian's Chromium via Playwright at
1400 px wide. Screenshots go to ``$CIARD_SHOTS`` (default ``/tmp/ciard-shots``) as ``t16-*.png``;
the sweep's wall time (Start to both trials complete) is printed and saved as
``$CIARD_SHOTS/sweep16.json``. Skipped (with the reason) when Chromium or playwright is missing.
"""
from __future__ import annotations

import json
import time

from browser_support import IDLE_JS, idle, SHOTS, browser_page, require_browser, streamlit_server, wait
from store_support import write_finished_run

require_browser()

#: a natural SmallCNN run of seconds: what the sweep's trials train
TINY = dict(method="natural", student="smallcnn", student_init="", epochs=1, train_subset=128, eval_size=32,
            eval_pgd_steps=1, test_size=0, precision="fp32")


def _idle(page, timeout: float = 60) -> None:
    idle(page, timeout, settle_ms=400, js=IDLE_JS)


def _shot(page, name):
    page.mouse.move(5, 5)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def _select(page, key, option):
    page.locator(f".st-key-{key} [role=combobox]").first.click()
    page.get_by_role("option", name=option, exact=True).first.click()


def _fill(page, key, value):
    box = page.locator(f".st-key-{key} input").first
    box.fill(str(value))
    box.press("Tab")


def _button(page, key, label):
    return page.locator(f".st-key-{key}").get_by_role("button", name=label, exact=True)


def test_form_runs_table_and_a_two_trial_sweep_in_a_browser(tmp_path):
    import torch

    from ciard.models import build_model
    from ciard.runs import RunStore
    SHOTS.mkdir(parents=True, exist_ok=True)
    runs = tmp_path / "runs"
    runs.mkdir()
    torch.manual_seed(0)
    write_finished_run(runs, "tiny", build_model("smallcnn"), **TINY)
    write_finished_run(runs, "tiny-push2", build_model("smallcnn"), **{**TINY, "push_weight": 2.0, "lr": 0.05})
    store = RunStore(runs)
    with streamlit_server(runs, tmp_path / "server.log") as (url, _), browser_page(60_000) as (_, page):
        page.set_viewport_size({"width": 1400, "height": 1000})

        # the Train form: three bad values, one Start, three messages under their fields
        page.goto(url + "/train")
        page.locator(".st-key-tf_push_temp input").wait_for(timeout=180_000)   # the first run imports torch
        _fill(page, "tf_push_temp", "-1")
        _fill(page, "tf_eps", "2")
        _fill(page, "tf_lr", "-0.1")
        _button(page, "train_start", "Start training").click()
        page.get_by_text("3 problems, nothing started", exact=False).wait_for()
        for message in ("T_push = -1 must be positive", "eps (L-inf) = 2 must be in (0, 1]",
                        "Learning rate = -0.1 must not be negative"):
            page.locator("[data-testid=stAlert]", has_text=message).first.wait_for()
        _shot(page, "t16-train-form-errors.png")

        # Runs: the differing hyperparameters as columns, best by a score, clone into the form
        page.goto(url + "/runs")
        page.locator("[data-testid=stDataFrame]").first.wait_for(timeout=180_000)
        _idle(page)
        _shot(page, "t16-runs-table.png")
        # the run acted on defaults to the newest, tiny-push2
        _button(page, "runs_clone", "Clone into the form").click()
        page.locator(".st-key-tf_method [role=combobox]").wait_for()
        wait(lambda: page.locator(".st-key-tf_train_subset input").input_value() == "128", 30, "the cloned form")
        assert page.locator(".st-key-tf_student_init input").input_value() == ""
        assert page.locator(".st-key-tf_push_weight input").input_value() == "2"
        _idle(page)
        _shot(page, "t16-train-form-cloned.png")

        # Sweep: 2 trials on the cloned tiny config, one at a time
        # through the sidebar, in the same session: a page load would start a fresh form
        page.get_by_role("link", name="Sweep").click()
        page.locator(".st-key-sweep_study input").wait_for(timeout=180_000)
        assert page.locator(".st-key-sweep_queue_n input").input_value() == "1"
        _fill(page, "sweep_study", "browser")
        _select(page, "sweep_base", "Train form (as last started or cloned)")
        _fill(page, "sweep_trials", "2")
        t0 = time.time()
        _button(page, "sweep_start", "Start sweep").click()
        page.get_by_text("Started sweep", exact=False).wait_for()
        try:
            wait(lambda: page.get_by_text("2 trials, 2 complete", exact=False).count() > 0, 400,
                 "both trials complete on the page", poll=1.0)
        except AssertionError:
            _shot(page, "t16-sweep-timeout.png")
            log = runs / "sweeps" / "browser.log"
            raise AssertionError(f"sweep log:\n{log.read_text() if log.is_file() else '(none)'}") from None
        elapsed = time.time() - t0
        table = page.locator("[data-testid=stDataFrame]")
        for run in ("browser-t000", "browser-t001"):
            wait(lambda: table.get_by_text(run, exact=True).count() > 0, 30, f"trial {run} in the table")
        page.locator(".st-key-sweep_figures").get_by_text("Show Optuna's figures").click()
        _idle(page)
        wait(lambda: page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length") >= 1, 60,
             "Optuna's figures")
        for tab in ("Optimisation history", "Parallel coordinates", "Parameter importances", "Slices"):
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(300)
        page.get_by_role("tab", name="Optimisation history").click()
        _shot(page, "t16-sweep-page.png")
        best = max(("browser-t000", "browser-t001"),
                   key=lambda n: max(r.get("score", -1) for r in store.read_metrics(n)[0] if r.get("kind") == "epoch"))
        _button(page, "sweep_promote", "Promote best trial").click()
        page.get_by_text("Promoted the best trial", exact=False).wait_for()
        page.get_by_text(best, exact=False).first.wait_for()          # the message names the best trial
        assert store.active().get("run") != best                      # promotion is this session's only
        _shot(page, "t16-sweep-promoted.png")
        page.goto(url + "/runs")     # the trials are runs: scored, with their hyperparameters as columns
        page.locator("[data-testid=stDataFrame]").first.wait_for()
        _idle(page)
        _shot(page, "t16-runs-table-after-sweep.png")
        record = {"trials": 2, "seconds": round(elapsed, 1), "workload": TINY,
                  "what": "Start sweep pressed to '2 trials, 2 complete' shown, one trial at a time"}
        (SHOTS / "sweep16.json").write_text(json.dumps(record, indent=2))
        print(f"2-trial sweep from the Sweep page: {elapsed:.1f} s")
