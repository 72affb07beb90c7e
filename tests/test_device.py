"""Device choice: auto is CUDA, then Apple MPS, then the CPU; an absent device is one line."""
import pytest
import torch

from ciard import runtime
from ciard.cli import main
from ciard.config import ConfigError


@pytest.fixture
def machine(monkeypatch):
    """Pretend the machine has the given accelerators (nothing runs on them)."""
    def set_(cuda: bool = False, mps: bool = False, gpus: int = 1, macos14: bool = True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus if cuda else 0)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: macos14)
    return set_


@pytest.mark.parametrize("cuda, mps, expected", [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert runtime.resolve_device("auto").type == expected


def test_named_devices(machine):
    machine(cuda=False, mps=True)
    assert runtime.resolve_device("mps") == torch.device("mps")
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    machine(cuda=True, mps=False, gpus=2)
    assert runtime.resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("name, words", [
    ("mps", "MPS"), ("cuda", "no CUDA GPU"), ("cuda:0", "no CUDA GPU"), ("tpu", "unknown device")])
def test_absent_or_unknown_device_is_a_config_error(machine, name, words):
    machine(cuda=False, mps=False)
    with pytest.raises(ConfigError, match=words):
        runtime.resolve_device(name)


def test_gpu_index_beyond_the_machine(machine):
    machine(cuda=True, gpus=1)
    with pytest.raises(ConfigError, match="only 1 CUDA GPUs"):
        runtime.resolve_device("cuda:3")


def test_mps_precision_is_fp32_unless_bf16_is_asked_for_and_supported(machine):
    mps = torch.device("mps")
    machine(mps=True, macos14=True)
    assert runtime.resolve_precision("auto", mps) == "fp32"
    assert runtime.resolve_precision("fp32", mps) == "fp32"
    assert runtime.resolve_precision("bf16", mps) == "bf16"
    machine(mps=True, macos14=False)
    with pytest.raises(ConfigError, match="macOS 14"):
        runtime.resolve_precision("bf16", mps)


def test_mps_has_no_float64_and_no_compile():
    assert runtime.exact_dtype(torch.device("mps")) == torch.float32
    assert runtime.exact_dtype(torch.device("cpu")) == torch.float64
    assert not runtime.compile_supported(torch.device("mps"))
    assert runtime.compile_supported(torch.device("cpu"))


def test_sidebar_offers_mps_only_where_it_exists(machine):
    pytest.importorskip("streamlit")
    from ciard.studio.sidebar import device_options
    machine(cuda=False, mps=True)
    assert device_options() == ["auto", "cpu", "mps"]
    machine(cuda=False, mps=False)
    assert device_options() == ["auto", "cpu"]


def test_cli_help_lists_mps(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "mps" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["train", "--preset", "demo", "--device", "mps"],
    ["bench", "--device", "mps"],
    ["eval", "--checkpoint", "zoo:demo-ciard-resnet20", "--device", "mps"],
    ["train", "--preset", "demo", "--device", "cuda"],
])
def test_cli_absent_device_is_one_line_exit_2(machine, capsys, tmp_path, monkeypatch, argv):
    machine(cuda=False, mps=False)
    monkeypatch.chdir(tmp_path)   # a run directory would land here
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: device ") and "\n" not in err, err
    assert not (tmp_path / "runs").exists()   # no run was started
