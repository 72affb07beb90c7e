"""The CUDA path: a training step in fp32 and bf16, folded evaluation, the attack, a short run.

Skipped without a CUDA GPU. Runs under pytest, or without it (a GPU machine with only torch
and torchvision): ``python tests/test_cuda.py`` runs every test here and exits non-zero if
one fails or there is no GPU; ``--device cpu`` runs the same checks on the CPU (a dry run of
this file, not a CUDA check). Only torch, torchvision and this package are imported.
"""
import functools
import math
import os
import sys
import tempfile
import traceback
from pathlib import Path

if __name__ == "__main__":   # `python tests/test_cuda.py`: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from ciard import checkpoints
from ciard.attacks import PGD
from ciard.config import Config
from ciard.data import fixed_subset, load_dataset, to_float
from ciard.evaluate import robust_correct
from ciard.fold import fold
from ciard.methods import build_method
from ciard.models import build_model
from ciard.runtime import autocast_factory, prepare_model
from ciard.teachers import resolve_teachers
from ciard.trainer import Trainer, train_step

try:
    import pytest
except ImportError:   # the plain runner below needs no pytest
    pytest = None
else:
    pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

#: where the checks run; the runner's --device cpu changes it for a dry run
DEVICE = os.environ.get("CIARD_TEST_DEVICE", "cuda")
CLEAN, ROBUST = "zoo:demo-clean-resnet20", "zoo:demo-robust-resnet20"
EPS = 8 / 255


@functools.lru_cache(maxsize=None)
def _test_split():
    return load_dataset("default", seed=0).test


def _test_images(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    sub = fixed_subset(_test_split(), n, seed=1)
    return to_float(sub.x).to(DEVICE), sub.y.to(DEVICE)


def _step(precision: str) -> None:
    dev = torch.device(DEVICE)
    cfg = Config().override(method="ciard", student="resnet20", pgd_steps=3, pgd_step_size=2 / 255,
                            itt_warmup=0.0, precision=precision, device=DEVICE)
    torch.manual_seed(0)
    student = prepare_model(build_model("resnet20"), dev, True)
    teachers = {"clean": prepare_model(checkpoints.load_model(CLEAN, dev), dev, True),
                "robust": prepare_model(checkpoints.load_model(ROBUST, dev), dev, True)}
    seen: set[torch.dtype] = set()
    first_conv = next(m for m in student.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    method = build_method(cfg, student, teachers, autocast_factory(precision, dev))
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    before = [p.detach().clone() for p in student.parameters()]
    x, y = _test_images(64)
    for step in range(2):
        out, _ = train_step(method, opt, x, y, step / 2, 0.05, channels_last=True)
        assert out.loss.device.type == dev.type
        assert math.isfinite(out.loss.item()), out.loss
        for key, value in out.metrics.items():
            assert math.isfinite(float(value)), key
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters())), "the student did not move"
    # the student's train-mode passes ran in the precision asked for
    assert seen == {torch.bfloat16 if precision == "bf16" else torch.float32}, seen


def test_train_step_fp32():
    _step("fp32")


def test_train_step_bf16():
    _step("bf16")


def test_folded_evaluation_equals_unfolded():
    model = checkpoints.load_model(CLEAN, DEVICE)
    x, y = _test_images()
    view = fold(model, channels_last=True)
    with torch.no_grad():
        plain, folded = model(x), view(x)
    # cuDNN's fp32 convolutions may use TF32 (torch's default): agreement to its rounding
    torch.testing.assert_close(folded, plain, rtol=1e-2, atol=1e-2)
    assert (folded.argmax(1) != plain.argmax(1)).sum().item() <= 1
    torch.manual_seed(0)
    a = robust_correct(view, x, y, PGD(EPS, 10, 2 / 255)).float().mean().item()
    torch.manual_seed(0)
    b = robust_correct(model, x, y, PGD(EPS, 10, 2 / 255)).float().mean().item()
    assert abs(a - b) <= 0.015, (a, b)


def test_attack_stays_in_the_eps_ball():
    model = checkpoints.load_model(ROBUST, DEVICE)
    x, y = _test_images()
    x = x.contiguous(memory_format=torch.channels_last)
    x_adv = PGD(EPS, 10, 2 / 255)(fold(model), x, y)
    assert x_adv.device == x.device and x_adv.shape == x.shape
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6
    assert x_adv.min().item() >= 0 and x_adv.max().item() <= 1
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
        adv = (model(x_adv).argmax(1) == y).float().mean().item()
    assert adv < clean, (clean, adv)   # it is an attack


def test_one_epoch_run():
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config().override(method="ciard", student="resnet20", clean_teacher=CLEAN, robust_teacher=ROBUST,
                                train_subset=512, epochs=1, batch_size=64, pgd_steps=2, eval_size=100,
                                eval_pgd_steps=2, test_size=100, device=DEVICE, precision="auto",
                                out_dir=tmp, progress=False, checkpoint_every=0)
        result = Trainer(cfg, teachers=resolve_teachers).fit()
        assert result.status == "finished" and result.epoch == 1 and result.step == 8
        assert 0.0 <= result.final["test_pgd20"] <= result.final["test_clean"] <= 1.0
        status = (Path(result.run_dir) / "status.json").read_text()
        assert f'"device": "{DEVICE}' in status
        # a checkpoint trained here loads on a CPU-only machine
        cpu_model = checkpoints.load_model(result.final["best_checkpoint"], "cpu")
        assert next(cpu_model.parameters()).device.type == "cpu"
        last = checkpoints.load(Path(result.run_dir) / "last.pt", map_location="cpu")
        assert (last["rng"]["cuda"] is not None) == (DEVICE == "cuda")


def _run_all() -> int:
    """Every ``test_*`` function here, in order; exit status 1 if one fails."""
    global DEVICE
    if "--device" in sys.argv:
        DEVICE = sys.argv[sys.argv.index("--device") + 1]
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU: nothing checked (use --device cpu for a dry run on the CPU)")
        return 1
    name = torch.cuda.get_device_name() if DEVICE.startswith("cuda") else "CPU"
    print(f"torch {torch.__version__} on {DEVICE} ({name})", flush=True)
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    failed = 0
    for n, f in tests:
        try:
            f()
        except Exception:
            failed += 1
            print(f"FAIL {n}\n{traceback.format_exc()}", flush=True)
        else:
            print(f"ok   {n}", flush=True)
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_run_all())
