"""Checkpoints from anywhere: one line in our words for every bad file, and the metadata is
checked before a model is built from it (a file cannot make the loader allocate 256 GB)."""
import pytest
import torch

import ciard
import ciard.models
from ciard import checkpoints
from ciard.checkpoints import CheckpointError
from ciard.models import build_model


def _saved(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.fixture
def no_build(monkeypatch):
    """Building any model fails the test: the checks must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a model was built from untrusted metadata: {args} {kwargs}")
    monkeypatch.setattr(ciard.models, "build_model", refuse)


def _good_state():
    return build_model("smallcnn").state_dict()


@pytest.mark.parametrize("meta, message", [
    ({"arch": "wrn-1000-1000", "num_classes": 10}, "too large"),
    ({"arch": "resnet99", "num_classes": 10}, "unknown model 'resnet99'"),
    ({"arch": "smallcnn", "num_classes": 10 ** 9}, "num_classes '1000000000' is not a class count"),
    ({"arch": "smallcnn", "num_classes": 0}, "is not a class count"),
    ({"arch": "smallcnn", "num_classes": "10"}, "is not a class count"),
    ({"arch": "smallcnn", "num_classes": 10, "kwargs": {"evil": 1}}, "unexpected model argument 'evil'"),
    ({"arch": "smallcnn", "num_classes": 10, "kwargs": {"mean": "abc"}}, "mean must be three numbers"),
    ({"arch": "mobilenetv2_x1000", "num_classes": 10}, "width multiplier must be in"),
    ({"arch": 5, "num_classes": 10}, "names no architecture"),
    ("smallcnn", "its model description is a str"),
])
def test_metadata_is_checked_before_building(tmp_path, no_build, meta, message):
    path = _saved(tmp_path, "m.pt", {"format": 1, "kind": "model", "model": meta, "state_dict": {}})
    with pytest.raises(CheckpointError, match=message) as info:
        ciard.load_model(path)
    assert "\n" not in str(info.value)


def test_a_robust_teacher_meta_is_checked_too(tmp_path, no_build):
    path = _saved(tmp_path, "t.pt", {"format": 1, "kind": "train", "state_dict": {},
                                      "model": {"arch": "smallcnn", "num_classes": 10},
                                      "method_state": {"robust": {}}, "robust_meta": {"arch": "wrn-1000-1000",
                                                                                      "num_classes": 10}})
    with pytest.raises(CheckpointError, match="too large"):
        ciard.load_model(path, role="robust_teacher")


@pytest.mark.parametrize("contents, message", [
    (b"root:x:0:0:root:/root:/bin/bash\n", "it is not a file torch.save wrote"),
    (b"hello world\n", "it is not a file torch.save wrote"),
    (b"\0" * 4096, "it is not a file torch.save wrote"),
    (b"", "it is not a file torch.save wrote"),
    (b"PK\x03\x04" + b"\0" * 100, "truncated or damaged"),
])
def test_foreign_files_are_one_line_in_our_words(tmp_path, contents, message):
    path = tmp_path / "f.pt"
    path.write_bytes(contents)
    with pytest.raises(CheckpointError, match=message) as info:
        checkpoints.load(path)
    text = str(info.value)
    assert "\n" not in text and "list index" not in text and ": 101" not in text


def test_a_pickle_that_would_run_code_is_refused_without_torchs_advice(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    path = _saved(tmp_path, "evil.pt", {"model": {"arch": "smallcnn", "num_classes": 10}, "state_dict": Evil()})
    with pytest.raises(CheckpointError, match="could run code") as info:
        checkpoints.load(path)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_weights_that_do_not_fit_are_described_in_our_words(tmp_path):
    state = _good_state()
    state.pop(next(iter(state)))
    state["extra.weight"] = torch.zeros(1)
    path = _saved(tmp_path, "w.pt", {"format": 1, "model": {"arch": "smallcnn", "num_classes": 10},
                                      "state_dict": state})
    with pytest.raises(CheckpointError, match=r"weights do not fit smallcnn: 1 missing .*1 unexpected"):
        ciard.load_model(path)
    path = _saved(tmp_path, "s.pt", {"format": 1, "model": {"arch": "smallcnn", "num_classes": 10},
                                      "state_dict": "weights"})
    with pytest.raises(CheckpointError, match="not a mapping of tensors"):
        ciard.load_model(path)


def test_training_refuses_a_student_too_large_to_build():
    from ciard.config import Config, ConfigError, validate
    with pytest.raises(ConfigError, match="too large"):
        validate(Config().override(student="wrn-1000-1000"))


@pytest.mark.parametrize("config, expected", [
    (None, {}),
    ("trained by hand", {}),
    ({"method": "ciard", "data": {"dataset": "cifar10"}}, {"data": {"dataset": "cifar10"}}),
    ({"method": {"method": "rslad", "push_weight": 0.0}, 3: {"x": 1}},
     {"method": {"method": "rslad", "push_weight": 0.0}}),
])
def test_a_recorded_config_of_any_shape_is_read_without_raising(tmp_path, config, expected):
    """Every reader of a checkpoint's training config (zoo, teacher cautions, the app's
    provenance line, the push view) goes through recorded_config; a foreign shape is dropped."""
    from ciard.studio import own
    obj = {"format": 1, "model": {"arch": "smallcnn", "num_classes": 10}, "state_dict": _good_state()}
    if config is not None:
        obj["config"] = config
    ck = checkpoints.load(_saved(tmp_path, "c.pt", obj))
    assert checkpoints.recorded_config(ck) == expected
    line = own.describe(ck)
    assert line.startswith("smallcnn, 10 classes")
    assert ("no training record" in line) == (not expected)
    assert ("trained with rslad" in line) == ("method" in expected)


@pytest.mark.parametrize("config, expected", [
    ({"method": {"method": "ciard", "push_weight": 1}}, 1.0),
    ({"method": {"method": "ciard", "push_weight": "0"}}, 0.0),
    ({"method": {"method": "ciard"}}, None),                            # an old config: unknown
    ({"method": {"method": "ciard", "push_weight": "heavy"}}, None),
    ({"method": {"method": "rslad", "push_weight": 1.0}}, None),        # not a CIARD student
    ({"method": "ciard"}, None), ({}, None), (None, None),
])
def test_push_weight_is_read_once_for_zoo_probe_and_push_view(config, expected):
    assert checkpoints.push_weight(config) == expected
