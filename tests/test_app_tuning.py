"""Tuning from the app (issue 16): every form problem at once by label, the live header's
hyperparameters, the Runs table a researcher sorts and clones from, seed groups, sweeps."""
from __future__ import annotations

import json

from ciard.runs import RunStore
from ciard.studio import forms
from test_app import _app, _texts, _write_run


# -- the form ------------------------------------------------------------------------------
def test_three_bad_values_give_three_messages_at_once_by_label(runs_dir):
    at = _app("app_pages/train.py")
    at.text_input(key="tf_push_temp").set_value("-1")
    at.text_input(key="tf_eps").set_value("2")
    at.number_input(key="tf_epochs").set_value(0)
    at.button(key="train_start").click().run()
    assert not at.exception
    errors = _texts(at.error)
    assert any("3 problems" in e for e in errors), errors
    for message in ("T_push = -1 must be positive", "eps (L-inf) = 2 must be in (0, 1]",
                    "Epochs = 0 must be at least 1"):
        assert any(e.startswith(message) for e in errors), (message, errors)
    assert not any("push_temp" in e for e in errors), errors   # the form's label, not the config name
    titles = [e.label for e in at.expander]
    assert "CIARD · 1 problem" in titles and "Optimisation · 1 problem" in titles, titles
    assert RunStore(runs_dir).names() == []
    # fixed values clear their messages
    at.text_input(key="tf_push_temp").set_value("5")
    at.text_input(key="tf_eps").set_value("8/255")
    at.number_input(key="tf_epochs").set_value(1)
    at.text_input(key="tf_name").set_value("")  # the run name field is optional
    at.selectbox(key="train_preset").set_value("demo").run()


def test_field_errors_files_a_problem_between_fields_under_its_field():
    values = forms.preset_values("demo")
    values.update(student="smallcnn", lr="-1")   # the demo's student_init is a ResNet-20
    errors = forms.field_errors("demo", values, device="cpu")
    assert set(errors) == {"lr", "student"}, errors
    assert errors["lr"].startswith("Learning rate = -1")
    assert "Student starts from" in errors["student"] and "student_init" not in errors["student"]
    assert forms.field_errors("demo", forms.preset_values("demo"), device="cpu") == {}


def test_live_header_shows_what_differs_from_the_preset_and_the_whole_state(runs_dir):
    _write_run(runs_dir, "tuned", push_weight=2.5, push_temp=7.0)
    at = _app("app_pages/train.py")
    text = " ".join(_texts(at.markdown))
    assert "Changed from preset demo: Epochs = 2 · Push weight λ = 2.5 · T_push = 7" in text.replace("*", ""), text
    assert "finished</div>" in text     # the state in full, not a truncated metric
