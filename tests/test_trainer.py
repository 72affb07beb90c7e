"""The trainer: end-to-end distillation, stop and resume, checkpoints."""
import json

import pytest
import torch

import ciard
from ciard import checkpoints
from ciard.config import Config
from ciard.runlog import RunDir
from ciard.teachers import resolve_teachers
from ciard.trainer import Trainer
from store_support import StopAfter


def _cfg(tmp_path, teacher_ckpts, **kw):
    clean, robust = teacher_ckpts
    base = dict(method="ciard", student="smallcnn", clean_teacher=clean, robust_teacher=robust,
                train_subset=256, epochs=2, batch_size=64, pgd_steps=2, pgd_step_size=4 / 255,
                itt_warmup=0.1, itt_lr=0.01, eval_size=40, eval_pgd_steps=2, test_size=0,
                precision="fp32", device="cpu", out_dir=str(tmp_path), progress=False,
                checkpoint_every=0)
    base.update(kw)
    return Config().override(**base)


def test_resume_mid_epoch_equals_uninterrupted_run(tmp_path, teacher_ckpts):
    cfg = _cfg(tmp_path, teacher_ckpts)
    full = Trainer(cfg, RunDir(tmp_path / "full"), teachers=resolve_teachers).fit()
    assert full.status == "finished" and full.step == 8

    stopped = Trainer(cfg, StopAfter(tmp_path / "split", 3), teachers=resolve_teachers).fit()
    assert stopped.status == "stopped" and stopped.step == 3
    resumed = Trainer(cfg, RunDir(tmp_path / "split"), teachers=resolve_teachers).fit(resume=True)
    assert resumed.status == "finished" and resumed.step == 8

    a = checkpoints.load(tmp_path / "full" / "last.pt")
    b = checkpoints.load(tmp_path / "split" / "last.pt")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for k in a["method_state"]["robust"]:   # the iteratively trained teacher too
        assert torch.equal(a["method_state"]["robust"][k], b["method_state"]["robust"][k]), k
    assert torch.equal(a["method_state"]["tau_adv"], b["method_state"]["tau_adv"])
    # the metric streams agree step for step (none lost, none duplicated)
    la = [r for r in RunDir(tmp_path / "full").read_metrics() if r["kind"] == "step"]
    lb = [r for r in RunDir(tmp_path / "split").read_metrics() if r["kind"] == "step"]
    assert [r["step"] for r in lb] == list(range(1, 9))
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]


def test_end_to_end_distillation_logs_everything(tmp_path, teacher_ckpts):
    cfg = _cfg(tmp_path, teacher_ckpts, epochs=1, train_subset=320, test_size=100)
    res = Trainer(cfg, RunDir(tmp_path / "e2e"), teachers=resolve_teachers).fit()
    run = RunDir(tmp_path / "e2e")
    records = run.read_metrics()
    steps = [r for r in records if r["kind"] == "step"]
    assert len(steps) == 5
    for key in ("loss", "loss_adv", "loss_nat", "loss_push", "push_scale", "tau_adv", "tau_nat",
                "w_adv", "w_nat", "teacher_lr", "lr", "train_acc", "img_per_s"):
        assert key in steps[-1], key
    epoch = next(r for r in records if r["kind"] == "epoch")
    for key in ("student_clean", "student_pgd", "clean_teacher_clean", "clean_teacher_pgd",
                "robust_teacher_clean", "robust_teacher_pgd"):
        assert 0.0 <= epoch[key] <= 1.0
    assert run.read_status()["state"] == "finished"
    assert res.final["test_n"] == 100 and 0 <= res.final["test_pgd20"] <= res.final["test_clean"]
    model = ciard.load_model(tmp_path / "e2e")
    assert not model.training
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    robust = ciard.load_model(tmp_path / "e2e" / "last.pt", role="robust_teacher")
    assert robust.arch == "smallcnn"


def test_config_json_records_the_settings_a_method_fixes(tmp_path, teacher_ckpts):
    """B-MTARD is CIARD with push and ITT off and adaptive weights on, whatever was asked: its
    run's config.json says so (the Runs page and a resume read it), and a resume keeps it."""
    cfg = _cfg(tmp_path, teacher_ckpts, method="mtard", epochs=1, train_subset=128)
    assert cfg.method.itt and cfg.method.push_weight > 0 and not cfg.method.adaptive_weights
    Trainer(cfg, StopAfter(tmp_path / "mtard", 1), teachers=resolve_teachers).fit()
    saved = json.loads((tmp_path / "mtard" / "config.json").read_text())["method"]
    assert (saved["method"], saved["itt"], saved["push_weight"], saved["adaptive_weights"]) == ("mtard", False, 0.0, True)
    resumed = Config.from_dict(json.loads((tmp_path / "mtard" / "config.json").read_text()))
    res = Trainer(resumed, RunDir(tmp_path / "mtard"), teachers=resolve_teachers).fit(resume=True)
    assert res.status == "finished"
    assert json.loads((tmp_path / "mtard" / "config.json").read_text())["method"] == saved


def test_checkpoint_round_trip_and_bad_files(tmp_path, trained_cnn):
    path = checkpoints.save_model(trained_cnn, tmp_path / "m.pt", metrics={"acc": 0.5})
    loaded = ciard.load_model(path)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained_cnn.eval()(x))
    assert checkpoints.load(path)["metrics"] == {"acc": 0.5}
    # truncated, missing, not ours: one clear error each
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoints.CheckpointError, match="cannot read checkpoint"):
        ciard.load_model(tmp_path / "cut.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not found"):
        ciard.load_model(tmp_path / "nope.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not a CIARD checkpoint"):
        ciard.load_model(tmp_path / "other.pt")
    # a file that would execute code on unpickling is refused (weights_only)
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save({"model": {}, "state_dict": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(checkpoints.CheckpointError):
        ciard.load_model(tmp_path / "evil.pt")


def test_config_json_round_trip(tmp_path):
    cfg = Config().override(method="rslad", eps="4/255", itt=False, name="x")
    again = Config.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    flat = Config.from_dict({"push_weight": 0.5, "optim": {"epochs": 3}})
    assert flat.method.push_weight == 0.5 and flat.optim.epochs == 3


def test_student_init_starts_from_the_checkpoint_and_refuses_a_mismatch(tmp_path, teacher_ckpts):
    from ciard.checkpoints import CheckpointError
    from ciard.config import ConfigError, validate
    clean, _ = teacher_ckpts
    init = checkpoints.load_model(clean)
    # lr 0: the student's weights can only be what it started from (BatchNorm statistics may move)
    cfg = _cfg(tmp_path, teacher_ckpts, student=init.arch, student_init=clean, lr=0.0,
               weight_decay=0.0, epochs=1, name="init")
    res = Trainer(cfg, teachers=resolve_teachers).fit()
    trained = checkpoints.load(res.run_dir + "/last.pt")["state_dict"]
    params = dict(init.named_parameters())
    assert params and all(torch.equal(trained[k], v) for k, v in params.items())
    assert json.loads((tmp_path / "init" / "config.json").read_text())["model"]["student_init"] == clean
    # without it, the same config starts from a random initialisation
    fresh = Trainer(cfg.override(student_init=None, name="fresh"), teachers=resolve_teachers).fit()
    other = checkpoints.load(fresh.run_dir + "/last.pt")["state_dict"]
    assert not all(torch.equal(other[k], v) for k, v in params.items())
    # a mismatch or a missing file is refused before any work, with one line naming it
    with pytest.raises(ConfigError, match="student_init .* holds a smallcnn, but the student is a resnet20"):
        Trainer(cfg.override(student="resnet20", name="bad"))
    with pytest.raises(ConfigError, match="student_init"):
        validate(cfg.override(student_init=str(tmp_path / "nope.pt")))
    # the trainer checks again when it loads the weights (a file replaced after validation)
    from ciard.trainer import _init_student
    from ciard.models import build_model
    with pytest.raises(CheckpointError, match="student_init"):
        _init_student(build_model("resnet20"), clean, torch.device("cpu"))


def _wrn_teacher(seed):
    """A tiny pre-activation WRN whose BatchNorms have non-trivial running statistics (its
    pre-activation BNs follow an addition, so they stay unfolded in the eval view)."""
    from ciard.models import build_model
    torch.manual_seed(seed)
    model = build_model("wrn-10-1")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("method", ["rslad", "ciard"])
def test_frozen_wrn_teachers_are_unchanged_by_a_run(tmp_path, monkeypatch, method):
    """Issue 11, item 1: the end-of-epoch evaluation used to leave the unfused BatchNorms of a
    frozen pre-activation teacher in train mode, so its running statistics (and outputs)
    drifted during the next epoch. Buffers, outputs and modes must survive a short run."""
    from ciard.config import TEACHERS_NEEDED
    teachers = {role: _wrn_teacher(i) for i, role in enumerate(TEACHERS_NEEDED[method])}
    state = {r: {k: v.clone() for k, v in m.state_dict().items()} for r, m in teachers.items()}
    probe = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        outputs = {r: m(probe) for r, m in teachers.items()}
    cfg = Config().override(method=method, student="smallcnn", clean_teacher="auto",
                            robust_teacher="auto", itt=False, train_subset=128, epochs=2,
                            batch_size=64, pgd_steps=1, pgd_step_size=4 / 255, eval_size=20,
                            eval_pgd_steps=1, test_size=0, precision="fp32", device="cpu",
                            channels_last=False, out_dir=str(tmp_path), progress=False,
                            checkpoint_every=0)
    # in-memory teachers, given to the trainer directly
    assert Trainer(cfg, RunDir(tmp_path / method), teachers=dict(teachers)).fit().status == "finished"
    for role, model in teachers.items():
        assert not any(m.training for m in model.modules()), role
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[role][k]), (role, k)
        with torch.no_grad():   # no .eval() here: the modes it was left in must be eval
            assert torch.equal(model(probe), outputs[role]), role


def test_each_epoch_records_how_much_the_student_favours_one_class_and_warns_when_it_collapsed(
        tmp_path, teacher_ckpts, monkeypatch, caplog):
    """student_top_class_share: the share of the validation images given the most frequent
    class. At lr 1.0, DGAD and PeerAiD students predicted one class everywhere (README): the log
    and the Train page say so (runlog.collapse_note) instead of leaving a chance-level curve."""
    import ciard.trainer as trainer_mod
    seen = []

    def recording(model, x, *a, **kw):
        out = real(model, x, *a, **kw)
        seen.append(out)
        return out
    real = trainer_mod.predict
    monkeypatch.setattr(trainer_mod, "predict", recording)
    cfg = _cfg(tmp_path, teacher_ckpts, epochs=1, method="rslad")
    with caplog.at_level("WARNING", logger="ciard"):
        Trainer(cfg, RunDir(tmp_path / "a"), teachers=resolve_teachers).fit()
    epoch = next(r for r in RunDir(tmp_path / "a").read_metrics() if r["kind"] == "epoch")
    assert len(seen) == 1 and len(seen[0]) == 40
    assert epoch["student_top_class_share"] == pytest.approx(torch.bincount(seen[0]).max().item() / 40)
    assert epoch["student_top_class_share"] < 0.9 and "collapsed" not in caplog.text

    monkeypatch.setattr(trainer_mod, "predict", lambda model, x, *a, **kw: torch.full((len(x),), 3))
    with caplog.at_level("WARNING", logger="ciard"):
        Trainer(cfg, RunDir(tmp_path / "b"), teachers=resolve_teachers).fit()
    epoch = next(r for r in RunDir(tmp_path / "b").read_metrics() if r["kind"] == "epoch")
    assert epoch["student_top_class_share"] == 1.0
    assert "after epoch 1 the student predicts one class for 100% of the validation images" in caplog.text
