"""The teacher resolver: what "auto" is, and the trainer taking teachers only from its caller."""
from __future__ import annotations

import json

import pytest

from ciard.config import Config, ConfigError
from ciard.runlog import RunDir
from ciard.teachers import find_auto, quick_teacher_config, quick_teacher_name
from ciard.trainer import Trainer


def _quick(root, name, state="finished"):
    d = root / "teachers" / name
    d.mkdir(parents=True)
    (d / "best.pt").write_bytes(b"weights")
    (d / "status.json").write_text(json.dumps({"state": state}))
    return d


def test_auto_finds_a_quick_teacher_trained_on_a_subset(tmp_path):
    """A run on 256 images trains `robust-folder-n256`; the sidebar's "auto" (no subset) finds it."""
    cfg = Config().override(dataset="folder", train_subset=256)
    name = quick_teacher_config("robust", cfg).run.name
    assert name == quick_teacher_name("robust", "folder", 256) == "robust-folder-n256"
    assert find_auto("robust", "folder", tmp_path)[0] is None
    d = _quick(tmp_path, name)
    path, line = find_auto("robust", "folder", tmp_path)
    assert path == d / "best.pt" and "teachers/robust-folder-n256" in line
    assert find_auto("robust", "folder", tmp_path, train_subset=256)[0] == d / "best.pt"
    assert find_auto("robust", "folder", tmp_path, train_subset=512)[0] is None
    assert find_auto("clean", "folder", tmp_path)[0] is None   # another role's teacher is not it


def test_auto_prefers_the_full_data_teacher_then_the_larger_subset(tmp_path):
    _quick(tmp_path, "clean-folder-n256")
    big = _quick(tmp_path, "clean-folder-n1024")
    assert find_auto("clean", "folder", tmp_path)[0] == big / "best.pt"
    full = _quick(tmp_path, "clean-folder")
    assert find_auto("clean", "folder", tmp_path)[0] == full / "best.pt"


def test_auto_says_when_a_quick_teacher_is_being_trained(tmp_path):
    _quick(tmp_path, "clean-folder-n64", state="running")
    path, line = find_auto("clean", "folder", tmp_path)
    assert path is None and "being trained now" in line


def test_the_shipped_teacher_comes_first(tmp_path):
    _quick(tmp_path, "robust-default")
    path, line = find_auto("robust", "default", tmp_path)
    assert line.startswith("shipped:") and path.is_file()


def test_a_trainer_without_the_methods_teachers_refuses_to_start(tmp_path, default_data):
    cfg = Config().override(method="rslad", student="smallcnn", robust_teacher="auto", epochs=1,
                            batch_size=32, out_dir=str(tmp_path), device="cpu")
    with pytest.raises(ConfigError, match="needs a robust teacher"):
        Trainer(cfg, RunDir(tmp_path / "r"), data=default_data).fit()
