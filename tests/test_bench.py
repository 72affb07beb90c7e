"""The fast step does the reference's mathematics; the bench command reports its figures."""
import copy
import json

import pytest
import torch

from ciard.cli import main
from ciard.config import Config
from ciard.evaluate import evaluate
from ciard.methods import build_method
from ciard.models import build_model
from ciard.reference_step import ReferenceCIARD
from ciard.roofline import count_flops
from ciard.runtime import prepare_model
from ciard.trainer import train_step


@pytest.mark.parametrize("fast", [True, False], ids=["folded-channels-last", "plain-layout"])
def test_fast_step_matches_reference_step_in_fp32(batch, fast):
    """With the plain layout the two steps agree bit for bit; with BatchNorm folding and
    channels-last, rounding flips the sign of a few near-zero attack gradients (14-32 of
    98,304 pixels here), so losses agree to a tolerance instead."""
    x, y = batch
    cfg = Config().override(method="ciard", student="smallcnn", pgd_steps=3, pgd_step_size=2 / 255,
                            itt_warmup=0.0, itt_lr=0.01, precision="fp32", fold_bn=fast,
                            channels_last=fast)
    torch.manual_seed(0)
    s0, n0, r0 = build_model("smallcnn"), build_model("smallcnn"), build_model("smallcnn")
    for m in (n0, r0):  # teachers that are not uniform guessers, so the push mask is mixed
        with torch.no_grad():
            m.head.weight.mul_(20)

    fast_s = prepare_model(copy.deepcopy(s0), torch.device("cpu"), fast)
    teachers = {"clean": prepare_model(copy.deepcopy(n0), torch.device("cpu"), fast),
                "robust": prepare_model(copy.deepcopy(r0), torch.device("cpu"), fast)}
    method = build_method(cfg, fast_s, teachers)
    opt = torch.optim.SGD(fast_s.parameters(), lr=0.05, momentum=0.9, weight_decay=2e-4)
    ref = ReferenceCIARD(cfg.override(lr=0.05), copy.deepcopy(s0), copy.deepcopy(n0), copy.deepcopy(r0))

    for step in range(2):
        torch.manual_seed(100 + step)
        out, _ = train_step(method, opt, x, y, 0.5, 0.05, channels_last=fast)
        torch.manual_seed(100 + step)
        r = ref.step(x, y, 0.5, 0.05)
        for key in ("loss_adv", "loss_nat", "loss_push", "push_scale"):
            assert out.metrics[key].item() == pytest.approx(r[key], rel=2e-3, abs=1e-7), key
        assert out.loss.item() == pytest.approx(r["loss"], rel=2e-3, abs=1e-6)
        assert method.tau_adv.item() == pytest.approx(ref.state.tau_adv)
        assert method.tau_nat.item() == pytest.approx(ref.state.tau_nat)
    # the same updates to the student and (by ITT) to the robust teacher
    for a, b in zip(fast_s.parameters(), ref.student.parameters()):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)
    if not fast:
        for a, b in zip(teachers["robust"].parameters(), ref.robust.parameters()):
            assert torch.equal(a, b)
        for a, b in zip(fast_s.parameters(), ref.student.parameters()):
            assert torch.equal(a, b)


def test_folded_evaluation_gives_the_same_robust_accuracy(trained_cnn, default_data):
    from ciard.data import fixed_subset, to_float
    sub = fixed_subset(default_data.test, 200, seed=1)
    x, y = to_float(sub.x), sub.y
    a = evaluate(trained_cnn, x, y, ["clean", "pgd_sat", "cw"], fold_bn=True)
    b = evaluate(trained_cnn, x, y, ["clean", "pgd_sat", "cw"], fold_bn=False)
    for key in a:
        assert abs(a[key]["accuracy"] - b[key]["accuracy"]) <= 0.005, key


def test_bench_json(capsys):
    code = main(["bench", "--student", "smallcnn", "--clean-teacher", "smallcnn", "--robust-teacher",
                 "smallcnn", "--batch-size", "16", "--pgd-steps", "2", "--steps", "1", "--rounds", "1",
                 "--warmup", "0", "--no-compile", "--eval", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    for key in ("img_per_s", "reference_img_per_s", "speedup", "eval_img_per_s", "torchattacks_img_per_s"):
        assert out[key] > 0, key


def test_bench_times_the_trainers_own_step_as_often_as_asked(monkeypatch, capsys):
    """What the benchmark times is ciard.trainer.train_step: warm-up steps, then steps x rounds
    (plus the one pass that counts FLOPs), each on the asked batch; --no-reference skips the
    reference step."""
    import ciard.bench
    calls = []
    real = ciard.bench.train_step

    def counted(method, optim, x, y, *args, **kw):
        calls.append(len(y))
        return real(method, optim, x, y, *args, **kw)

    monkeypatch.setattr(ciard.bench, "train_step", counted)
    code = main(["bench", "--student", "smallcnn", "--clean-teacher", "smallcnn", "--robust-teacher",
                 "smallcnn", "--batch-size", "8", "--pgd-steps", "1", "--steps", "2", "--rounds", "3",
                 "--warmup", "1", "--no-compile", "--no-reference", "--precision", "fp32", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert len(calls) == 1 + 2 * 3 + 1 and set(calls) == {8}
    assert "reference_img_per_s" not in out and "speedup" not in out


def test_bench_reports_the_roofline(capsys):
    """FLOPs per image, achieved GFLOP/s and the matmul peak, consistent with each other."""
    argv = ["bench", "--student", "smallcnn", "--clean-teacher", "smallcnn", "--robust-teacher",
            "smallcnn", "--batch-size", "8", "--pgd-steps", "2", "--steps", "1", "--rounds", "1",
            "--warmup", "0", "--no-compile", "--no-reference", "--precision", "fp32", "--peak-size", "256"]
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("flops_per_image", "gflops_per_s", "peak_gflops_per_s", "fraction_of_peak"):
        assert out[key] > 0, key
    assert out["gflops_per_s"] == pytest.approx(out["flops_per_image"] * out["img_per_s"] / 1e9)
    assert out["fraction_of_peak"] == pytest.approx(out["gflops_per_s"] / out["peak_gflops_per_s"])
    assert out["peak_matmul"]["n"] == 256 and out["peak_matmul"]["dtype"] == "fp32"
    # CIARD's step is at least the student's forward and backward on x and x' and the PGD
    # steps' forward and input-gradient passes: 2 * 3 + 2 * 2 = 10 student forwards
    student_forward, _ = count_flops(lambda: build_model("smallcnn")(torch.rand(1, 3, 32, 32)))
    assert out["flops_per_image"] >= 10 * student_forward
    assert sum(out["flops_by_op"].values()) == pytest.approx(out["flops_per_image"] * 8)

    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "FLOPs per image" in text and "of the matmul peak" in text
