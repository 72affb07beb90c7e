"""Cautions about the teachers a run names: CIARD's push term and a label-smoothed clean teacher.

The zoo's lr pilots found that CIARD with the label-smoothed airbench94 clean teacher stalled
(README, "The label-smoothed clean teacher stalls CIARD"); a user who picks such a teacher is
told so by the CLI's log, the run's log and the Train page, and nothing is refused.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from ciard import teachers, zoo
from ciard.config import preset
from ciard.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent
SMOOTHED = "zoo:cifar10-clean-airbench94"     # trained with label smoothing 0.2 (its manifest command)
PLAIN = "zoo:cifar10-clean-resnet20"          # natural training, no smoothing


def _cfg(**kw):
    return preset("demo").override(**{"method": "ciard", **kw})


def test_the_zoo_teachers_say_what_they_were_trained_with():
    """The premise, from the files themselves: the caution reads the checkpoint's own config."""
    by_name = {e["name"]: e for e in zoo.entries()}
    assert "--label-smoothing 0.2" in by_name["cifar10-clean-airbench94"]["command"]
    assert "--label-smoothing" not in by_name["cifar10-clean-resnet20"]["command"]
    from ciard import checkpoints

    def smoothing(name):
        return checkpoints.load(zoo.ZOO_DIR / f"{name}.pt")["config"]["method"].get("label_smoothing", 0.0)
    assert smoothing("cifar10-clean-airbench94") == 0.2 and smoothing("cifar10-clean-resnet20") == 0.0


def test_a_label_smoothed_clean_teacher_with_the_push_term_gets_a_caution():
    [caution] = teachers.teacher_cautions(_cfg(clean_teacher=SMOOTHED))
    assert "cifar10-clean-airbench94.pt" in caution and "label smoothing 0.2" in caution
    assert "push_weight 0" in caution and "stalls CIARD" in caution
    assert teachers.check_teachers(_cfg(clean_teacher=SMOOTHED)) == [caution]   # what the CLI and form call


@pytest.mark.parametrize("kw", [
    dict(clean_teacher=PLAIN),                        # no smoothing
    dict(clean_teacher=SMOOTHED, push_weight=0.0),    # no push term
    dict(clean_teacher=SMOOTHED, method="mtard"),     # two teachers, no push
    dict(clean_teacher="auto"),                       # the shipped default: no smoothing
    dict(clean_teacher=SMOOTHED, method="rslad"),     # no clean teacher at all
])
def test_no_caution_without_both(kw):
    assert teachers.teacher_cautions(_cfg(**kw)) == []


def test_auto_is_the_shipped_default_and_a_run_directory_its_best_checkpoint(tmp_path, monkeypatch):
    """``auto`` and a run directory resolve as the trainer resolves them (not only zoo:NAME)."""
    smoothed = zoo.ZOO_DIR / "cifar10-clean-airbench94.pt"
    asked = []
    monkeypatch.setattr(zoo, "default_teacher", lambda role, dataset: asked.append(role) or smoothed)
    assert len(teachers.teacher_cautions(_cfg(clean_teacher="auto"))) == 1 and asked == ["clean_teacher"]
    monkeypatch.undo()
    run = tmp_path / "my-clean-run"
    run.mkdir()
    (run / "best.pt").write_bytes(smoothed.read_bytes())
    [caution] = teachers.teacher_cautions(_cfg(clean_teacher=str(run)))
    assert "best.pt" in caution and "label smoothing 0.2" in caution


def test_the_caution_reads_any_checkpoint_and_never_raises(tmp_path):
    src = torch.load(zoo.ZOO_DIR / "cifar10-clean-resnet20.pt", map_location="cpu", weights_only=False)
    src["config"]["method"]["label_smoothing"] = 0.1
    torch.save(src, tmp_path / "mine.pt")
    [caution] = teachers.teacher_cautions(_cfg(clean_teacher=str(tmp_path / "mine.pt")))
    assert "mine.pt" in caution and "label smoothing 0.1" in caution
    del src["config"]                                 # a checkpoint that does not say: no caution
    torch.save(src, tmp_path / "silent.pt")
    assert teachers.teacher_cautions(_cfg(clean_teacher=str(tmp_path / "silent.pt"))) == []
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 truncated")   # check_teachers refuses it; this does not raise
    assert teachers.teacher_cautions(_cfg(clean_teacher=str(tmp_path / "bad.pt"))) == []


def test_the_run_log_carries_the_caution(caplog):
    """resolve_teachers (what the trainer is given) logs it, so a CLI run and the run's train.log
    have it whoever started the run."""
    from types import SimpleNamespace
    cfg = _cfg(clean_teacher=SMOOTHED)
    data = SimpleNamespace(num_classes=10)   # all resolve_teacher asks of the data
    with caplog.at_level(logging.WARNING, logger="ciard.teachers"):
        got = teachers.resolve_teachers(cfg, data, torch.device("cpu"))
    assert set(got) == {"clean", "robust"}
    assert any("caution: the clean teacher" in r.getMessage() for r in caplog.records), caplog.text


def test_the_train_page_shows_the_caution_once_it_has_started_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CIARD_RUNS_DIR", str(tmp_path))
    launched = []

    class Started:
        name = "cautioned"

    def fake_launch(self, cfg):   # the launch itself is tested in test_app.py: not a second trainer here
        launched.append(cfg)
        return Started()
    monkeypatch.setattr(RunStore, "launch", fake_launch)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/train.py").run()
    at.selectbox(key="tf_method").set_value("ciard")
    at.text_input(key="tf_clean_teacher").set_value(SMOOTHED)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [c.method.method for c in launched] == ["ciard"]
    warnings = [w.value.replace("\\", "") for w in at.warning]   # markdown escapes out
    assert any("Caution: the clean teacher" in w and "label smoothing 0.2" in w and "Push weight λ 0" in w
               for w in warnings), warnings   # the form's label, not the config name
    at.run()   # shown once, with the Started line
    assert not any("Caution" in w.value for w in at.warning)
