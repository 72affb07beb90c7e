"""Own data and own checkpoints (issue 15): a 3-class image folder, an uploaded or typed
checkpoint for any role, and per-session promotion; through AppTest and the helpers."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from ciard import checkpoints
from ciard.models import build_model
from ciard.studio import own
from store_support import write_finished_run

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120
CLASSES = ("cat", "dog", "fish")


def _texts(elements) -> str:
    return " ".join(re.sub(r"\\(.)", r"\1", str(e.value)) for e in elements)


@pytest.fixture
def folder3(tmp_path) -> Path:
    """An image folder with 3 classes (4 train and 4 test images each, 32 x 32)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in CLASSES:
            d = tmp_path / "ds3" / split / c
            d.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return tmp_path / "ds3"


@pytest.fixture
def ckpt3(tmp_path) -> Path:
    """A 3-class smallcnn checkpoint with a training record (its provenance)."""
    torch.manual_seed(0)
    return checkpoints.save_model(build_model("smallcnn", 3), tmp_path / "three.pt",
                                  config={"method": {"method": "natural"}, "data": {"dataset": "folder"}},
                                  metrics={"epoch": 2, "student_clean": 0.5})


def _app(folder: Path | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    if folder is not None:
        at.selectbox(key="sb_dataset").set_value("folder").run()
        at.text_input(key="sb_data_path").set_value(str(folder)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _bring(at: AppTest, role: str, *, upload: tuple[str, bytes] | None = None, path: str = "") -> AppTest:
    at.radio(key="sb_own_role").set_value(role)
    if upload is not None:
        at.file_uploader(key="sb_own_file").set_value((upload[0], upload[1], "application/octet-stream"))
    at.text_input(key="sb_own_path").set_value(path)
    at.button(key="sb_own_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# -- 1: a folder dataset whose class count is not the models' ------------------------------
@pytest.mark.parametrize("page", ["app_pages/adversarial.py", "app_pages/explain.py"])
def test_three_class_folder_is_one_clear_message(runs_dir, folder3, page):
    at = _app(folder3)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1, _texts(at.error)
    said = _texts(at.error)
    assert "different classes" in said and "has 3 (cat, dog, fish)" in said and "has 10" in said


def test_upload_page_works_beside_a_three_class_folder(runs_dir, folder3):
    at = _app(folder3)
    at.switch_page("app_pages/upload.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, _texts(at.error)              # the shipped teachers stand in for "auto"
    assert "airplane" in _texts(at.markdown) + _texts(at.caption)   # CIFAR-10 names, not numbers


# -- 2: bring your own checkpoint ------------------------------------------------------------------
def test_uploaded_three_class_student_is_used_on_the_three_class_folder(runs_dir, folder3, ckpt3):
    at = _app(folder3)
    _bring(at, "student", upload=("three.pt", ckpt3.read_bytes()))
    spec = at.sidebar.selectbox(key="sb_student").value
    assert spec.startswith(own.UPLOAD_PREFIX)
    said = _texts(at.sidebar.caption)
    assert "smallcnn, 3 classes" in said and "trained with natural on folder" in said and "epoch 2" in said
    at.switch_page("app_pages/adversarial.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert {c.key for c in at.get("plotly_chart")} == {"adv_top_student"}   # scored on cat/dog/fish
    assert "different classes" not in _texts(at.error)


def test_uploaded_checkpoint_serves_a_teacher_role(runs_dir, tmp_path):
    torch.manual_seed(1)
    ck = checkpoints.save_model(build_model("smallcnn"), tmp_path / "t10.pt")
    at = _bring(_app(), "clean_teacher", upload=("t10.pt", ck.read_bytes()))
    assert at.sidebar.selectbox(key="sb_clean_teacher").value.startswith(own.UPLOAD_PREFIX)
    assert "provenance unknown" in _texts(at.sidebar.caption)
    at.switch_page("app_pages/adversarial.py").run()
    assert not at.exception and not at.error, _texts(at.error)
    assert "adv_top_clean_teacher" in {c.key for c in at.get("plotly_chart")}


def test_mismatched_upload_is_refused_with_one_line(runs_dir, ckpt3):
    at = _bring(_app(), "student", upload=("three.pt", ckpt3.read_bytes()))
    assert len(at.sidebar.error) == 1
    assert "has 3 classes but the sidebar's dataset has 10: refused" in _texts(at.sidebar.error)
    assert not at.sidebar.selectbox(key="sb_student").value.startswith(own.UPLOAD_PREFIX)


def test_junk_upload_and_bad_path_are_one_line(runs_dir, tmp_path):
    at = _bring(_app(), "student", upload=("junk.pt", b"not a checkpoint at all"))
    assert "not a file torch.save wrote" in _texts(at.sidebar.error)
    at.file_uploader(key="sb_own_file").set_value(None)
    _bring(at, "robust_teacher", path=str(tmp_path / "nothing.pt"))
    assert "checkpoint not found" in _texts(at.sidebar.error)


def test_typed_path_is_checked_and_used(runs_dir, folder3, ckpt3):
    at = _bring(_app(folder3), "robust_teacher", path=str(ckpt3))
    assert at.sidebar.selectbox(key="sb_robust_teacher").value == str(ckpt3)
    assert "smallcnn, 3 classes" in _texts(at.sidebar.caption)


def test_upload_size_cap_and_safe_load(monkeypatch, ckpt3):
    monkeypatch.setattr(own, "MAX_MB", 0)
    ck, err = own.from_upload("big.pt", ckpt3.read_bytes(), None)
    assert ck is None and "limited to 0 MB" in err
    monkeypatch.setattr(own, "MAX_MB", 100)
    # a pickle that would run code is refused by the weights-only reader
    import io
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    buf = io.BytesIO()
    torch.save({"model": {"arch": "smallcnn", "num_classes": 3}, "state_dict": {}, "x": Evil()}, buf)
    ck, err = own.from_upload("evil.pt", buf.getvalue(), None)
    assert ck is None and "could run code" in err
    ck, err = own.from_upload("three.pt", ckpt3.read_bytes(), 3)
    assert err is None and own.bytes_of(ck.spec) == ckpt3.read_bytes()
    assert pickle.dumps(ck.num_classes) and ck.arch == "smallcnn"


# -- 8: promotion is per session --------------------------------------------------------------------
def test_promotion_is_per_session(runs_dir):
    torch.manual_seed(0)
    write_finished_run(runs_dir, "weak", build_model("smallcnn"))
    a, b = _app(), _app()
    default = b.sidebar.selectbox(key="sb_student").value
    a.switch_page("app_pages/runs.py").run()
    a.selectbox(key="runs_action_run").set_value("weak")
    a.button(key="runs_promote").click().run()
    assert a.sidebar.selectbox(key="sb_student").value == str(runs_dir / "weak" / "best.pt")
    assert "this browser session only" in _texts(a.sidebar.caption)
    b.run()
    assert b.sidebar.selectbox(key="sb_student").value == default     # the other visitor's demo holds
    c = _app()                                                          # and a new visitor's default too
    assert c.sidebar.selectbox(key="sb_student").value == default
    a.sidebar.selectbox(key="sb_student").set_value(default).run()    # undo: pick the default again
    assert a.sidebar.selectbox(key="sb_student").value == default


# -- 3: the Your own image page ------------------------------------------------------------------------
def _png(w: int, h: int) -> bytes:
    import io
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_crop_notes():
    from ciard.studio.upload_ui import crop_notes
    assert crop_notes(400, 300) == []
    pano = crop_notes(4000, 300)
    assert len(pano) == 1 and "centre 300 x 300 square" in pano[0] and "8% of its width" in pano[0]
    tiny = crop_notes(8, 8)
    assert len(tiny) == 1 and "Upscaled" in tiny[0]


def test_upload_page_classes_label_crop_and_attack_choice(runs_dir):
    at = _app()
    at.switch_page("app_pages/upload.py").run()
    assert "The models know 10 classes" in _texts(at.markdown) and "airplane" in _texts(at.markdown)
    assert "out-of-distribution" in _texts(at.caption)
    at.file_uploader(key="up_file").set_value(("pano.png", _png(4000, 300), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Heavily cropped" in _texts(at.warning)
    assert len([c for c in at.get("plotly_chart") if c.key.startswith("up_top_")]) == 3
    # a true label: right/wrong instead of holds/flips; the attack and its source are the user's
    at.selectbox(key="up_label").set_value(0)
    at.selectbox(key="adv_attack").set_value("fgsm")
    at.selectbox(key="adv_source").set_value("clean_teacher").run()
    assert not at.exception, [e.value for e in at.exception]
    verdicts = _texts(at.success) + _texts(at.error)
    assert re.search(r"\b(right|wrong|flips to wrong)\b", verdicts) and "holds:" not in verdicts
    caps = [c for i in at.get("image") for c in i.captions]
    assert any("FGSM" in c and "clean teacher" in c for c in caps), caps


# -- 6: the teaching-example finder -------------------------------------------------------------------
def test_finder_choose_rules():
    from ciard.studio import finder
    y = np.array([0, 1, 2])
    eye = np.eye(3)
    right = {"clean_teacher": eye, "robust_teacher": eye, "student": eye}
    adv = {"clean_teacher": eye[[1, 2, 0]], "robust_teacher": eye[[0, 1, 0]], "student": eye}
    idx = np.array([10, 11, 12])
    # image 10 and 11: teacher fooled, robust and student hold; 12: the robust teacher flips too
    assert finder.choose("teaching", idx, y, right, adv) == 10
    assert finder.choose("teaching", idx, y, right, adv, skip=1) == 11
    assert finder.choose("teaching", idx, y, right, {"clean_teacher": eye}) is None   # nobody fooled
    assert finder.choose("hardest", idx, y, right, adv) == 12                          # two of three fooled
    assert finder.choose("random", idx, y, {}, {}) in idx


def _panels(at: AppTest) -> dict[str, tuple[str, str]]:
    """role -> (clean subtitle, adversarial subtitle) of the top-5 charts."""
    import json
    out = {}
    for c in at.get("plotly_chart"):
        if c.key.startswith("adv_top_"):
            ann = [a["text"] for a in json.loads(c.proto.spec)["layout"]["annotations"]]
            out[c.key[len("adv_top_"):]] = (ann[0], ann[1])
    return out


def test_teaching_example_button_finds_the_story(runs_dir):
    at = _app()
    at.switch_page("app_pages/adversarial.py").run()
    at.button(key="adv_find_teaching").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Teaching example #" in _texts(at.caption), _texts(at.caption)
    panels = _panels(at)
    assert set(panels) == {"clean_teacher", "robust_teacher", "student"}
    assert all("right" in clean for clean, _ in panels.values()), panels
    assert "wrong" in panels["clean_teacher"][1]
    assert "right" in panels["robust_teacher"][1] and "right" in panels["student"][1], panels
    first = at.number_input(key="adv_idx").value
    at.button(key="adv_find_hardest").click().run()
    assert "Hardest of 64 test images" in _texts(at.caption)
    assert at.number_input(key="adv_idx").value != first


# -- 4 and 5: maps that compare, charts that agree ---------------------------------------------------
def test_attribution_maps_per_model_scale_overlay_and_no_axes():
    from ciard.studio.probe_charts import attribution_grid, scaled_maps
    strong, weak = np.full((32, 32), 1.7), np.full((32, 32), 0.01)
    strong[0, 0] = weak[0, 0] = 0.0
    maps = {"clean teacher": (strong, strong), "student": (weak, weak)}
    per, top = scaled_maps(maps)
    assert top == 1.0 and per["student"][0].max() == pytest.approx(1.0)   # the weak map is not black
    shared, top = scaled_maps(maps, shared=True)
    assert top == pytest.approx(1.7) and shared["student"][0].max() < 0.01 * top
    img = np.zeros((32, 32, 3), np.uint8)
    fig = attribution_grid(maps, images=(img, img), opacity=0.4)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 4 and {t.opacity for t in heat} == {0.4} and sum(t.type == "image" for t in fig.data) == 4
    for ax in [a for a in fig.layout if a.startswith(("xaxis", "yaxis"))]:
        assert fig.layout[ax].visible is False, ax


def test_charts_agree_on_percent_eps_markers_colours_and_true_class():
    import pandas as pd
    from ciard.attacks import eps_text
    from ciard.studio import charts
    from ciard.studio.metrics import _show
    from ciard.studio.probe_charts import RIGHT, WRONG, accuracy_eps_figure, topk_figure
    assert eps_text(8 / 255) == "8/255" and eps_text(0.1) == "0.1" and _show(None) == "—"
    fig = accuracy_eps_figure([0, 8 / 255], {"student": [0.5, 0.2]}, "t")
    assert list(fig.layout.xaxis.ticktext) == ["0/255", "8/255"] and tuple(fig.layout.yaxis.range) == (0, 100)
    acc = charts.accuracy_figure(pd.DataFrame({"epoch": [1], "student_clean": [0.4]}))
    assert tuple(acc.layout.yaxis.range) == (0, 100) and "markers" in acc.data[0].mode
    one = charts.step_figure(pd.DataFrame({"step": [1], "loss": [2.0]}), ["loss"], "t", "loss")
    assert "markers" in one.data[0].mode
    assert not {c.lower() for c in charts.MODEL_COLORS.values()} & {RIGHT.lower(), WRONG.lower()}
    lr = charts.lr_figure(pd.DataFrame({"step": [1, 2, 3], "lr": [0.1, 0.05, 0.0]}))
    assert lr.layout.yaxis.range[0] == 0 and 0.1 < lr.layout.yaxis.range[1] < 0.12
    # the true class at ~0 % is still a bar; the panel titles sit on two lines
    p = np.array([0.9, 0.05, 0.03, 0.015, 0.004, 0.001])
    top = topk_figure(p, p, [str(i) for i in range(6)], 5, "m")
    assert "5" in top.data[0].y and "≈0%" in top.data[0].text
    assert all("<br>" in a.text for a in top.layout.annotations)


def test_saliency_page_scale_and_overlay_controls(runs_dir):
    at = _app()
    at.switch_page("app_pages/explain.py").run()
    assert not at.exception and not at.error, _texts(at.error)
    assert at.radio(key="xp_scale").value == "per model" and at.toggle(key="xp_overlay").value
    assert "Each model on its own scale" in _texts(at.caption)
    at.radio(key="xp_scale").set_value("shared")
    at.toggle(key="xp_overlay").set_value(False).run()
    assert not at.exception and "One colour scale for the whole grid" in _texts(at.caption)


# -- 7: one selection across pages, in the URL ----------------------------------------------------
def test_selection_carries_between_adversarial_and_saliency(runs_dir):
    at = _app()
    at.switch_page("app_pages/adversarial.py").run()
    at.number_input(key="adv_idx").set_value(5)
    at.selectbox(key="adv_attack").set_value("fgsm")
    at.slider(key="adv_eps").set_value(4)
    at.selectbox(key="adv_source").set_value("clean_teacher").run()
    at.switch_page("app_pages/explain.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="adv_idx").value == 5 and at.selectbox(key="adv_attack").value == "fgsm"
    assert at.slider(key="adv_eps").value == 4 and at.selectbox(key="adv_source").value == "clean_teacher"
    q = {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert (q["img"], q["attack"], q["eps"], q["source"]) == ("5", "fgsm", "4", "clean_teacher")
    caps = [c for i in at.get("image") for c in i.captions]
    assert any("FGSM, eps 4/255, crafted on the clean teacher" in c for c in caps), caps
    at.slider(key="adv_eps").set_value(6).run()                  # and back again
    at.switch_page("app_pages/adversarial.py").run()
    assert at.slider(key="adv_eps").value == 6


def test_a_saliency_link_opens_that_view(runs_dir):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update({"img": "7", "attack": "fgsm", "eps": "2", "source": "robust_teacher"})
    at.run()
    at.switch_page("app_pages/explain.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="adv_idx").value == 7 and at.selectbox(key="adv_source").value == "robust_teacher"
