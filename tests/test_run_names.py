"""Run names are one folder name in the run store: the CLI, the store and the form share one rule."""
import os

import pytest

from ciard.cli import main
from ciard.config import Config, ConfigError, validate
from ciard.names import check_run_name, run_path
from ciard.runlog import RunDir
from ciard.runs import RunStore
from ciard.studio import forms

BAD = ["../../x", "/abs/path", "a/b", ".hidden", "..", ".", "", "a" * 101, "a\nb", "x y", "a\\b", "~user"]


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_with_one_line(name):
    with pytest.raises(ConfigError, match="is not allowed") as info:
        check_run_name(name)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["demo", "a", "ciard-resnet20", "mobilenetv2_x0.5", "run.2", "A" * 100])
def test_good_names_pass(name):
    assert check_run_name(name) == name


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, ds, fs in os.walk(root) for f in ds + fs)


@pytest.mark.parametrize("name", ["../../x", "/tmp/ciard-escape-test", "a/b"])
def test_cli_name_cannot_leave_the_run_store(capsys, tmp_path, name):
    store = tmp_path / "store" / "runs"
    code = main(["train", "--out-dir", str(store), "--name", name, "--method", "natural", "--student", "smallcnn",
                 "--epochs", "1", "--train-subset", "64", "--batch-size", "32", "--test-size", "0"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is not allowed" in err, err
    assert _tree(tmp_path) == [] and not os.path.exists("/tmp/ciard-escape-test")


@pytest.mark.parametrize("name", ["../../x", "/tmp/ciard-escape-test", "a/b"])
def test_run_store_refuses_names_before_creating_anything(tmp_path, name):
    store = RunStore(tmp_path / "runs")
    cfg = Config().override(method="natural", student="smallcnn", device="cpu")
    with pytest.raises(ValueError, match="is not allowed"):
        store.launch(cfg, name=name)
    with pytest.raises(ValueError, match="is not allowed"):   # the same rule through the config
        store.launch(cfg.override(name=name))
    with pytest.raises(KeyError):
        store.get(name)
    with pytest.raises(KeyError):
        store.stop(name)
    assert _tree(tmp_path) == [] and not os.path.exists("/tmp/ciard-escape-test")


def test_train_form_refuses_a_name_that_is_a_path():
    values = forms.preset_values("demo")
    with pytest.raises(ConfigError, match="is not allowed"):
        forms.build_config("demo", {**values, "name": "../outside"})


def test_a_symlink_out_of_the_store_is_not_a_run(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text(Config().to_json())
    root = tmp_path / "runs"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigError, match="outside the run store"):
        run_path(root, "link")
    with pytest.raises(KeyError):
        RunStore(root).get("link")
    assert RunStore(root).path("ok") == root / "ok"


def test_validate_checks_the_name_field():
    with pytest.raises(ConfigError, match="run name '../x'"):
        validate(Config().override(name="../x"))
    with pytest.raises(ConfigError, match="is not allowed"):
        RunDir.new("/tmp", "../x")
