"""The Playground's library side: toy2d points, mlp-WxD models, unbounded attacks, the runs.

The same-code tests check that a Playground run trains through ``ciard.methods`` (the CIFAR
method classes, counted by patching their ``compute``), that the CIARD loss on a toy batch
equals the method's formula written out here independently (CIARD-method.md, step 3), and
that ``ciard.playground`` holds no loss of its own.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ciard import playground as pg
from ciard import toy2d
from ciard.attacks import PGD, project
from ciard.methods import build_method
from ciard.methods.ciard import CIARD
from ciard.methods.natural import Natural
from ciard.methods.pgd_at import PGDAT
from ciard.models import build_model, check_buildable, is_point_model
from ciard.stats import mean_interval, paired_mean_difference

TINY = pg.PlaygroundSettings(steps=6, n_train=60, n_test=60, batch_size=20)


# -- toy2d ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", toy2d.DATASETS)
@pytest.mark.parametrize("k", [2, 3, 4])
def test_toy2d_shapes_classes_and_determinism(name, k):
    d = toy2d.make_toy2d(name, k, 0.1, n_train=101, n_test=50, seed=3)
    assert d.x_train.shape == (101, 2) and d.x_test.shape == (50, 2)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    counts = torch.bincount(d.y_train, minlength=k)
    assert counts.max() - counts.min() <= 1 and len(counts) == k
    assert float(d.x_train.abs().max()) < 3.0       # scaled to about +-1.5 (plus noise)
    again = toy2d.make_toy2d(name, k, 0.1, n_train=101, n_test=50, seed=3)
    assert torch.equal(d.x_train, again.x_train) and torch.equal(d.y_test, again.y_test)
    other = toy2d.make_toy2d(name, k, 0.1, n_train=101, n_test=50, seed=4)
    assert not torch.equal(d.x_train, other.x_train)


def test_toy2d_noise_moves_points():
    a = toy2d.make_toy2d("moons", 2, 0.0, seed=0)
    b = toy2d.make_toy2d("moons", 2, 0.5, seed=0)
    assert float((a.x_train - b.x_train).abs().mean()) > 0.05


@pytest.mark.parametrize("kw, words", [
    (dict(name="swirls"), "unknown toy dataset 'swirls'"),
    (dict(num_classes=5), "classes = 5"),
    (dict(num_classes=True), "classes = True"),
    (dict(noise=float("nan")), "noise = nan"),
    (dict(noise=2.0), "noise = 2.0"),
    (dict(n_train=1), "train points = 1"),
])
def test_toy2d_bad_settings_one_line(kw, words):
    args = dict(name="moons", num_classes=2, noise=0.1, n_train=100, n_test=100) | kw
    with pytest.raises(toy2d.ToyDataError, match=words.replace("(", r"\(")) as exc:
        toy2d.make_toy2d(args.pop("name"), args.pop("num_classes"), args.pop("noise"), **args)
    assert "\n" not in str(exc.value)


# -- mlp-WxD -------------------------------------------------------------------------------
def test_mlp_in_the_registry():
    m = build_model("MLP-16x2", 3)
    assert m.arch == "mlp-16x2" and m(torch.randn(7, 2)).shape == (7, 3)
    assert sum(isinstance(x, torch.nn.Linear) for x in m.modules()) == 3   # 2 hidden + head
    assert check_buildable("mlp-0x2") and check_buildable("mlp-16x99") and check_buildable("mlp-16")
    assert check_buildable("resnet20") is None        # the image models are untouched
    assert is_point_model("mlp-16x2") and not is_point_model("resnet20") and not is_point_model("nope")


def test_the_image_trainer_refuses_point_models():
    from ciard.config import Config, ConfigError, validate
    with pytest.raises(ConfigError, match="takes 2-D points"):
        validate(Config().override(student="mlp-16x2", clean_teacher=None, robust_teacher=None,
                                   method="natural"))
    assert build_model("resnet20")(torch.rand(2, 3, 32, 32)).shape == (2, 10)


# -- attacks on points: bounds=None --------------------------------------------------------
def test_attack_bounds_none_does_not_clamp_to_the_image_range():
    torch.manual_seed(0)
    model = build_model("mlp-16x2", 2)
    x = torch.tensor([[-1.2, 1.4], [0.5, -0.9], [1.3, 0.2]])
    y = torch.tensor([0, 1, 0])
    eps = 0.3
    free = PGD(eps=eps, steps=5, step_size=0.1, start="uniform", bounds=None)(model, x, y)
    assert float((free - x).abs().max()) <= eps + 1e-6
    assert float(free.min()) < -0.5                   # left [0, 1]: not clamped
    clamped = PGD(eps=eps, steps=5, step_size=0.1, start="uniform")(model, x, y)
    assert float(clamped.min()) >= 0.0 and float(clamped.max()) <= 1.0   # the default still clamps
    assert torch.equal(project(x + 5, x, eps, None), x + eps)


def test_methods_pass_bounds_to_their_training_attacks():
    s = TINY
    for name in ("ciard", "mtard", "rslad", "ard", "trades", "pgd_at", "fgsm_at"):
        cfg = pg.method_config(s, name)
        teachers = {"clean": build_model(s.teacher, 2), "robust": build_model(s.teacher, 2)}
        m = build_method(cfg, build_model(s.student, 2), teachers, bounds=None)
        assert m.attack.bounds is None, name
        m_img = build_method(cfg, build_model(s.student, 2), teachers)
        assert m_img.attack.bounds == (0.0, 1.0), name


# -- the same code as CIFAR ------------------------------------------------------------------
def test_a_playground_run_trains_every_model_through_ciard_methods(monkeypatch):
    calls: dict[str, int] = {}

    def counting(cls):
        original = cls.compute

        def compute(self, x, y, progress):
            calls[cls.name] = calls.get(cls.name, 0) + 1
            assert x.shape[1] == 2                      # toy points, not images
            return original(self, x, y, progress)
        monkeypatch.setattr(cls, "compute", compute)
    for cls in (CIARD, Natural, PGDAT):
        counting(cls)
    r = pg.run_playground(TINY, snapshots=0)
    # clean teacher (natural), robust teacher (pgd_at), student and twin (both ciard)
    assert calls == {"natural": TINY.steps, "pgd_at": TINY.steps, "ciard": 2 * TINY.steps}
    # the twin is CIARD with the push loss off: its logged push term never enters its loss
    assert all("loss_push" in h for h in r.history["twin"])
    assert {h["step"] for h in r.history["student"]} == set(range(1, TINY.steps + 1))


def _kl_ref(p, logits):
    """CIARD-method.md step 3: sum_c p (log(p + 1e-5) - log q), mean over batch and classes."""
    q = torch.softmax(logits, 1)
    return (p * (torch.log(p + 1e-5) - torch.log(q))).sum(1)


def test_ciard_loss_on_a_toy_batch_equals_the_written_out_formula(monkeypatch):
    torch.manual_seed(0)
    s = replace(TINY, push_weight=0.7, push_temp=3.0, eps=0.4)
    data = toy2d.make_toy2d("moons", 2, 0.2, n_train=64, n_test=8, seed=1)
    clean, robust, student = (build_model(a, 2) for a in (s.teacher, s.teacher, s.student))
    cfg = pg.method_config(s, "ciard", itt=False)
    method = build_method(cfg, student, {"clean": clean, "robust": robust}, bounds=None)
    method.tau_adv = torch.tensor(1.7)
    method.tau_nat = torch.tensor(2.3)
    seen = {}
    original = method.adversarial

    def adversarial(x, y, **kw):
        seen["x_adv"] = original(x, y, **kw)
        return seen["x_adv"]
    monkeypatch.setattr(method, "adversarial", adversarial)
    x, y = data.x_train, data.y_train
    out = method.compute(x, y, 0.0)

    xa = seen["x_adv"]
    assert float((xa - x).abs().max()) <= s.eps + 1e-6 and float(xa.min()) < 0   # unclamped box
    with torch.no_grad():
        s_adv, s_nat = student(xa), student(x)
        n_nat, n_adv, r_adv = clean(x), clean(xa), robust(xa)
        C = 2
        l_adv = _kl_ref(torch.softmax(r_adv / 1.7, 1), s_adv).mean() / C
        l_nat = _kl_ref(torch.softmax(n_nat / 2.3, 1), s_nat).mean() / C
        fooled = n_adv.argmax(1) != y
        if fooled.any():
            l_push = _kl_ref(torch.softmax(n_adv, 1)[fooled], s_adv[fooled] / 3.0).mean() / C
            scale = 10 ** (min(math.floor(math.log10(l_adv)), math.floor(math.log10(l_nat)))
                           - math.floor(math.log10(l_push)))
        else:
            l_push, scale = torch.tensor(0.0), 0.0
        expected = l_adv + l_nat - 0.7 * scale * l_push
    assert float(out.loss.detach()) == pytest.approx(float(expected), rel=1e-5, abs=1e-7)
    assert float(out.metrics["loss_push"]) == pytest.approx(float(l_push), rel=1e-5, abs=1e-7)
    assert float(out.metrics["push_fraction"]) == pytest.approx(float(fooled.float().mean()))


def test_the_playground_defines_no_loss_of_its_own():
    src = inspect.getsource(pg)
    for needle in ("log_softmax", "kl_div", "cross_entropy", "def kd_", "neg_entropy", ".backward("):
        assert needle not in src, needle
    assert "from .trainer import train_step" in src and "from .methods import" in src


# -- runs --------------------------------------------------------------------------------------
def test_run_snapshots_twin_from_the_same_init_and_masks():
    r = pg.run_playground(TINY, snapshots=3, grid=12)
    marks = 4
    assert len(r.frames) == 2 * marks and r.frames[0] == "teachers 0 %" and r.frames[-1] == "students 100 %"
    for role in pg.ROLES:
        assert len(r.snapshots[role]) == 2 * marks
        snap = r.snapshots[role][-1]
        assert snap.region.shape == (12, 12) and snap.adv.shape == (60, 2)
        assert float(np.abs(snap.adv - r.data.x_train.numpy()).max()) <= TINY.eps + 1e-5
    # students start from the same weights: identical regions at "students 0 %"
    assert np.array_equal(r.snapshots["student"][marks].region, r.snapshots["twin"][marks].region)
    assert r.snapshots["student"][-1].mask is not None and r.snapshots["clean"][-1].mask is None
    for role in pg.ROLES:
        assert 0.0 <= r.accuracy[role]["pgd"] <= r.accuracy[role]["clean"] <= 1.0
    i = 0
    assert r.fooled_by(len(r.frames) - 1, i) == [ro for ro in pg.ROLES if r.snapshots[ro][-1].fooled[i]]
    again = pg.run_playground(TINY, snapshots=0)
    assert again.accuracy == pg.run_playground(TINY, snapshots=0).accuracy   # deterministic


def test_push_weight_zero_makes_student_and_twin_identical():
    r = pg.run_playground(replace(TINY, push_weight=0.0), snapshots=0)
    assert r.accuracy["student"] == r.accuracy["twin"]
    assert [h["loss"] for h in r.history["student"]] == [h["loss"] for h in r.history["twin"]]


def test_other_methods_run_with_a_ciard_twin():
    for method in ("rslad", "trades", "natural"):
        r = pg.run_playground(replace(TINY, method=method, steps=3), snapshots=0)
        assert r.settings.role_labels()["twin"].startswith("student: ciard")
        assert set(r.accuracy) >= set(pg.ROLES)


@pytest.mark.parametrize("change, words", [
    (dict(eps=0.0), "eps = 0 must be in (0, 1]"),
    (dict(method="bogus"), "unknown method 'bogus'"),
    (dict(steps=0), "steps = 0 must be an integer"),
    (dict(student="resnet20"), "student = 'resnet20' must be an mlp-WxD"),
    (dict(robust_strength=1.5), "robust_strength = 1.5"),
    (dict(push_weight=float("inf")), "push_weight = inf is not a finite number"),
    (dict(dataset="x"), "unknown toy dataset 'x'"),
])
def test_bad_playground_settings_one_line(change, words):
    with pytest.raises(pg.PlaygroundError) as exc:
        pg.check_settings(replace(pg.PlaygroundSettings(), **change))
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_repeat_seeds_pairs_student_and_twin_by_seed():
    rep = pg.repeat_seeds(replace(TINY, steps=3), n=3)
    assert rep.seeds == [0, 1, 2] and len(rep.accuracy) == 3
    summ = rep.summary()
    d = summ["difference"]["pgd"]
    diffs = [a["student"]["pgd"] - a["twin"]["pgd"] for a in rep.accuracy]
    assert d.mean == pytest.approx(float(np.mean(diffs)))
    with pytest.raises(pg.PlaygroundError, match="seeds = 1"):
        pg.repeat_seeds(TINY, n=1)


# -- stats over seeds ---------------------------------------------------------------------------
def test_mean_interval_is_the_student_t_interval():
    iv = mean_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2    # t(0.975, 3)
    assert iv.mean == 2.5 and iv.low == pytest.approx(2.5 - half) and iv.high == pytest.approx(2.5 + half)
    assert mean_interval([0.5]).mean == 0.5 and mean_interval([0.5]).low != mean_interval([0.5]).low  # no interval
    d = paired_mean_difference([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])
    assert d.mean == pytest.approx(0.1) and d.low == pytest.approx(0.1) and d.excludes_zero
    assert not paired_mean_difference([0.9, 0.7], [0.8, 0.8]).excludes_zero
    with pytest.raises(ValueError):
        paired_mean_difference([1.0], [1.0, 2.0])


# -- the benchmark -----------------------------------------------------------------------------
def test_bench_playground_reports_the_run_and_the_budget(capsys):
    b = pg.bench_playground(replace(TINY, steps=4), rounds=1)
    assert b["budget_seconds"] == 5.0 and b["run_seconds"] >= b["train_seconds"] > 0
    text = pg.format_bench_playground(b)
    assert "four models" in text and "5 s budget" in text and "load" in text


def test_cli_bench_playground_flag(monkeypatch, capsys):
    from ciard import cli
    real = pg.bench_playground
    monkeypatch.setattr(pg, "bench_playground", lambda rounds: real(replace(TINY, steps=3), rounds))
    assert cli.main(["bench", "--playground", "--rounds", "1"]) == 0
    assert "Playground run:" in capsys.readouterr().out
