"""The app under hostile input: query parameters out of range, impossible paths in the sidebar,
Markdown in typed text, run names that are paths. One line each; no traceback; no fetch."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ciard.runs import RunStore
from ciard.studio.query import ADVERSARIAL, apply_query

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 90
EVIL_MD = "![x](http://evil.example/p.png) **bold** $x$ :red[red]"


def _app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _raw(elements) -> list[str]:
    """The Markdown bodies as sent to the browser (escapes included)."""
    return [str(e.value) for e in elements]


def _no_markdown(bodies: list[str]) -> None:
    for body in bodies:
        assert "![" not in body and "](http" not in body and "**bold**" not in body \
            and "$x$" not in body and ":red[" not in body, body


def test_query_values_are_clamped_to_the_widgets_ranges():
    state: dict = {}
    apply_query({"steps": "51", "eps": "-3", "img": "999999", "attack": "<script>", "source": "student"},
                state, ADVERSARIAL, highs={"img": 999})
    assert state == {"adv_steps": 50, "adv_eps": 0, "adv_idx": 999, "adv_source": "student"}
    state = {}
    apply_query({"steps": "nan", "eps": "1e999", "img": "abc", "attack": ["pgd", "fgsm"]}, state, ADVERSARIAL,
                highs={"img": 9})
    assert state == {"adv_attack": "fgsm"}


def test_adversarial_link_with_steps_51_opens_the_page(runs_dir):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update({"steps": "51", "eps": "99", "img": "100000"})
    at.run()
    at.switch_page("app_pages/adversarial.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="adv_steps").value == ADVERSARIAL["steps"].high == 50
    assert at.slider(key="adv_eps").value == 16
    assert at.number_input(key="adv_idx").value == 999


@pytest.mark.parametrize("dataset, path, message", [
    ("folder", "a" * 300, "longer than 255"),
    ("cifar10-archive", "/tmp/" + "b" * 300 + ".tar.gz", "longer than 255"),
    ("folder", "~nosuchuser/data", "no user 'nosuchuser'"),
    ("cifar10-archive", "~nosuchuser/c.tar.gz", "no user 'nosuchuser'"),
])
def test_sidebar_path_check_is_one_line(runs_dir, dataset, path, message):
    at = _app()
    at.sidebar.selectbox(key="sb_dataset").set_value(dataset).run()
    at.sidebar.text_input(key="sb_data_path").set_value(path).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.replace("\\", "") for e in _raw(at.sidebar.error)]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0], errors
    at.switch_page("app_pages/runs.py").run()   # and on every other page of the session
    assert not at.exception, [e.value for e in at.exception]


def test_typed_markdown_is_shown_as_text(runs_dir):
    at = _app()
    at.sidebar.selectbox(key="sb_dataset").set_value("folder").run()
    at.sidebar.text_input(key="sb_data_path").set_value(EVIL_MD).run()
    assert at.sidebar.error, "the path is refused"
    _no_markdown(_raw(at.sidebar.error))
    at.switch_page("app_pages/train.py").run()
    at.text_input(key="tf_name").set_value(EVIL_MD)
    at.text_input(key="tf_data_path").set_value("")
    at.selectbox(key="tf_dataset").set_value("default")
    at.button(key="train_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error, "the name is refused"
    _no_markdown(_raw(at.error))
    assert RunStore(runs_dir).names() == []


def test_a_failed_runs_error_text_is_not_rendered(runs_dir):
    from test_app import _write_run
    d = _write_run(runs_dir, "crashed", state="failed", final=False)
    status = json.loads((d / "status.json").read_text())
    (d / "status.json").write_text(json.dumps({**status, "error": EVIL_MD}))
    at = _app()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    assert any("failed" in e for e in _raw(at.error))
    _no_markdown(_raw(at.error) + _raw(at.markdown))


def test_a_run_name_that_is_a_path_is_refused_by_the_form(runs_dir, tmp_path):
    at = _app()
    at.switch_page("app_pages/train.py").run()
    at.text_input(key="tf_name").set_value("../../escaped")
    at.button(key="train_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("is not allowed" in e.replace("\\", "") for e in _raw(at.error)), _raw(at.error)
    assert RunStore(runs_dir).names() == [] and not list(tmp_path.parent.glob("escaped"))
    assert not (runs_dir.parent.parent / "escaped").exists()
