"""The probing pages (part 2) through AppTest, on the shipped demo teachers and tiny students."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from ciard import zoo
from ciard.models import build_model
from ciard.runs import RunStore
from ciard.studio.upload_ui import decode_upload
from store_support import write_finished_run

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 90


def _student_run(root: Path, name: str, seed: int, **overrides) -> None:
    torch.manual_seed(seed)
    write_finished_run(root, name, build_model("smallcnn"), **overrides)


@pytest.fixture
def with_students(runs_dir):
    _student_run(runs_dir, "ciard-a", 0)
    _student_run(runs_dir, "nopush-b", 1, push_weight=0.0)
    RunStore(runs_dir).promote("ciard-a")
    return runs_dir


def _page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(elements) -> str:
    """The elements' text as shown: Markdown escapes (``\\(``) of user text removed."""
    return " ".join(re.sub(r"\\(.)", r"\1", str(e.value)) for e in elements)


def test_adversarial_page_with_student(with_students):
    at = _page("app_pages/adversarial.py")
    assert not at.error, _texts(at.error)
    assert at.title[0].value == "Clean vs adversarial"
    assert len(at.get("plotly_chart")) == 3          # top-5 bars of the three models
    at.selectbox(key="adv_attack").set_value("fgsm")
    at.slider(key="adv_eps").set_value(4)
    at.run()
    assert not at.exception and not at.error
    assert at.query_params["attack"] in ("fgsm", ["fgsm"]) and at.query_params["eps"] in ("4", ["4"])
    at.button(key="btn_adv_curve").click()
    at.select_slider(key="adv_curve_n").set_value(32)
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 4          # + accuracy-vs-eps


def test_a_curve_cached_by_one_session_is_reused_by_the_next(with_students):
    """The curve cache is shared across sessions; a hit must not replay the first session's
    progress bar into the second (st.cache_data did: CacheReplayClosureError)."""
    shown = []
    for _ in range(2):
        at = _page("app_pages/adversarial.py")
        at.button(key="btn_adv_curve").click()
        at.select_slider(key="adv_curve_n").set_value(32)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown.append(at.session_state["adv_curve"][1])
    assert shown[0] == shown[1]


def test_adversarial_page_without_student_shows_teachers(runs_dir):
    from ciard.studio.sidebar import NO_STUDENT
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.selectbox(key="sb_student").set_value(NO_STUDENT).run()   # the zoo ships students: choose none
    at.switch_page("app_pages/adversarial.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, _texts(at.error)
    assert "no student yet" in _texts(at.info).lower()
    assert len(at.get("plotly_chart")) == 2


def test_truncated_teacher_is_one_message(runs_dir):
    bad = runs_dir / "teachers" / "robust-bad" / "best.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(zoo.ZOO_DIR.joinpath("demo-robust-resnet20.pt").read_bytes()[:5000])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.selectbox(key="sb_robust_teacher").set_value(str(bad)).run()
    at.switch_page("app_pages/adversarial.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "cannot read checkpoint" in _texts(at.error)
    keys = {c.key for c in at.get("plotly_chart")}   # the clean teacher (and a zoo student) still answer
    assert "adv_top_clean_teacher" in keys and "adv_top_robust_teacher" not in keys


def test_explain_page(with_students):
    at = _page("app_pages/explain.py")
    assert not at.error, _texts(at.error)
    assert len(at.get("plotly_chart")) == 1          # the grid; the push view waits for its button
    at.select_slider(key="xp_pca_n").set_value(64)
    at.button(key="btn_xp_push").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) >= 4          # grid, two PCA plots, KL histogram
    assert at.selectbox(key="xp_student_b").value.endswith("push 0)")   # the no-push twin
    # the attribution grid has a row for the student trained without push, beside the others
    assert any("student without push" in m.value for m in at.markdown)
    # the push view compares the two students on the same images, with its interval and verdict
    paired = [m.value for m in at.markdown if "Paired comparison on the same images" in m.value]
    assert len(paired) == 1 and "95 % CI" in paired[0]
    said = paired[0] + _texts(at.caption)
    assert ("not measurable at this budget" in said) == ("not significant" in said)
    assert "follows the fooled clean teacher" in " ".join(str(m.label) for m in at.metric)
    assert "Two things make up each rate" in _texts(at.caption)
    at.selectbox(key="xp_method").set_value("gradcam").run()
    assert not at.exception and not at.error


def test_upload_page_renders(with_students):
    at = _page("app_pages/upload.py")
    assert not at.error
    assert "upload an image" in _texts(at.info).lower()


def test_method_page(runs_dir):
    at = _page("app_pages/method.py")
    assert len(at.get("plotly_chart")) == 1 and len(at.latex) >= 4


def test_corrupt_upload_bytes_give_one_line():
    for data in (b"", b"garbage", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40):
        x, err = decode_upload(data)
        assert x is None and err and "\n" not in err


def test_method_page_diagram_and_demo_link(runs_dir):
    at = _page("app_pages/method.py")
    assert len(at.get("graphviz_chart")) == 1
    at.button(key="method_demo_1").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["adv_attack"] == "fgsm" and at.session_state["adv_source"] == "clean_teacher"
    assert any("Clean vs adversarial" in t.value for t in at.title)


def test_the_playground_hides_the_cifar_sidebar_and_keeps_its_choices(with_students):
    at = _page("app_pages/adversarial.py")
    students = at.selectbox(key="sb_student").options
    other = next(o for o in students if o != at.selectbox(key="sb_student").value)
    at.selectbox(key="sb_student").select(other).run()
    at.selectbox(key="sb_device").set_value("cpu").run()
    chosen = at.selectbox(key="sb_student").value
    at.switch_page("app_pages/playground.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [s for s in at.sidebar.selectbox if s.key in ("sb_student", "sb_dataset", "sb_device")]
    assert "trains its own small 2-D models" in _texts(at.sidebar.caption)
    at.switch_page("app_pages/adversarial.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="sb_student").value == chosen          # the choice survived the visit
    assert at.selectbox(key="sb_device").value == "cpu"


def test_the_push_view_says_whether_its_students_differ_only_in_the_push_loss(with_students):
    """Two students are a like-for-like ablation only if their configs differ in the push weight
    alone; otherwise the view names what else differs and does not credit the push loss."""
    _student_run(with_students, "nopush-lr", 2, push_weight=0.0, lr=0.2, pgd_step_size=3 / 255)
    at = _page("app_pages/explain.py")
    options = at.selectbox(key="xp_student_a").options
    run = {name: next(o for o in options if o.startswith(f"run: {name} ")) for name in ("ciard-a", "nopush-b", "nopush-lr")}
    at.selectbox(key="xp_student_a").set_value(run["ciard-a"])
    at.selectbox(key="xp_student_b").set_value(run["nopush-b"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "trained alike except for the push weight (λ 1 vs 0)" in _texts(at.caption)
    assert "differ in more than the push loss" not in _texts(at.warning)
    at.selectbox(key="xp_student_b").set_value(run["nopush-lr"]).run()
    warned = _texts(at.warning)
    assert "A and B differ in more than the push loss: attack.pgd_step_size " in warned, warned
    assert "vs 3/255; optim.lr 0.1 vs 0.2. A difference between them below mixes the push loss" in warned
    assert "trained alike" not in _texts(at.caption)


def test_training_differences_leave_out_bookkeeping_and_what_only_one_config_records():
    from ciard.studio.metrics import training_differences
    a = {"optim": {"lr": 0.5, "epochs": 6}, "run": {"name": "a", "threads": 2, "seed": 0, "precision": "fp32"},
         "attack": {"eps": 8 / 255, "eps_warmup": 0.0}, "method": {"push_weight": 1.0}}
    b = {"optim": {"lr": 0.5, "epochs": 2}, "run": {"name": "b", "threads": 1, "seed": 0, "precision": "auto"},
         "attack": {"eps": 8 / 255}, "method": {"push_weight": 0.0}}
    assert training_differences(a, b, also_ignored=("method.push_weight",)) == {
        "optim.epochs": ("6", "2"), "run.precision": ("fp32", "auto")}
    assert training_differences(a, b)["method.push_weight"] == ("1", "0")
    assert training_differences(a, a) == {}


def test_the_push_verdict_credits_the_push_loss_only_for_a_like_for_like_pair():
    from ciard.studio.explain_ui import push_credit
    pair = {"A": 1.0, "B": 0.0}
    assert push_credit("A", "alike", pair) == ", as the push loss intends for the student trained with it"
    assert "the opposite of what the push loss intends" in push_credit("B", "alike", pair)
    assert "not the push loss's effect alone" in push_credit("A", "mixed", pair)
    assert "not credited to it" in push_credit("A", "unknown", {"A": None, "B": 0.0})
    # both without push, both with it, or a student of another method: nothing to credit
    for push in ({"A": 0.0, "B": 0.0}, {"A": 1.0, "B": 2.0}, {"A": None, "B": 0.0}):
        assert push_credit("A", "alike", push) == ""


def test_only_perturbation_sizes_are_shown_in_255ths():
    from ciard.studio.metrics import training_differences
    a = {"attack": {"eps": 8 / 255, "pgd_step_size": 2 / 255, "eps_warmup": 0.2}, "optim": {"lr": 0.2}}
    b = {"attack": {"eps": 4 / 255, "pgd_step_size": 1 / 255, "eps_warmup": 0.4}, "optim": {"lr": 0.4}}
    assert training_differences(a, b) == {"attack.eps": ("8/255", "4/255"), "attack.pgd_step_size": ("2/255", "1/255"),
                                          "attack.eps_warmup": ("0.2", "0.4"), "optim.lr": ("0.2", "0.4")}
