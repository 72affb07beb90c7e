"""The command line: bad configs stop early with one clear line; eval prints JSON."""
import json

import pytest
import torch

from ciard.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["--student", "resnet99"], "unknown model 'resnet99'"),
    (["--eps", "2"], "eps = 2 must be in (0, 1]"),
    (["--eps", "0"], "eps = 0 must be in (0, 1]"),
    (["--lr", "-0.1"], "lr = -0.1 must not be negative"),
    (["--method", "ciard", "--clean-teacher", "/nope/clean.pt", "--robust-teacher", "auto"],
     "clean_teacher: checkpoint not found: /nope/clean.pt"),
    (["--dataset", "folder", "--data-path", "/nope/data"], "dataset path not found: /nope/data"),
    (["--method", "magic"], "unknown method 'magic'"),
    (["--epochs", "two"], "epochs = 'two' is not a valid int"),
    (["--preset", "demo", "--config", "/nope.json"], "config file not found: /nope.json"),
])
def test_bad_config_is_one_clear_line(capsys, tmp_path, argv, message):
    code, out, err = _run(capsys, "train", "--out-dir", str(tmp_path / "runs"), *argv)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "runs").exists()   # no work started


def test_paper_preset_refuses_auto_teachers_in_one_line(capsys, tmp_path, teacher_ckpts):
    archive = tmp_path / "cifar10.tar.gz"
    archive.write_bytes(b"")
    clean, robust = teacher_ckpts
    base = ("train", "--preset", "paper-cifar10", "--data-path", str(archive), "--print-config")
    for extra, missing in [((), "--clean-teacher and --robust-teacher"),
                           (("--clean-teacher", clean), "--robust-teacher as"),
                           (("--method", "rslad", "--clean-teacher", "auto"), "--robust-teacher as")]:
        code, out, err = _run(capsys, *base, *extra)
        lines = [line for line in err.strip().splitlines() if line]
        assert code == 2 and len(lines) == 1, err
        assert "paper-cifar10 reproduces the paper, which used a WRN-34-10 TRADES robust teacher " \
               "and a ResNet-56 clean teacher" in lines[0] and missing in lines[0], err
    # explicit teachers pass; a method that needs no teacher is not asked for any
    code, out, _ = _run(capsys, *base, "--clean-teacher", clean, "--robust-teacher", robust)
    assert code == 0 and json.loads(out)["model"]["paper_setup"] == "paper-cifar10"
    assert _run(capsys, *base, "--method", "pgd_at")[0] == 0
    # the demo preset keeps its auto teachers
    assert _run(capsys, "train", "--preset", "demo", "--print-config")[0] == 0


def test_print_config_applies_preset_and_overrides(capsys):
    code, out, _ = _run(capsys, "train", "--preset", "demo", "--push-weight", "0", "--no-itt",
                        "--eps", "4/255", "--print-config")
    cfg = json.loads(out)
    assert code == 0
    assert cfg["method"]["push_weight"] == 0 and cfg["method"]["itt"] is False
    assert cfg["attack"]["eps"] == pytest.approx(4 / 255)
    assert cfg["data"]["dataset"] == "default"


def test_eval_json_has_one_accuracy_per_attack(capsys, teacher_ckpts):
    clean, robust = teacher_ckpts
    code, out, err = _run(capsys, "eval", "--checkpoint", clean, "--n", "60",
                          "--attacks", "clean,fgsm,pgd_sat,cw,bb_pgd_trades", "--source", robust, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert set(res["accuracy"]) == {"clean", "fgsm", "pgd_sat", "cw", "bb_pgd_trades"}
    assert res["n"] == 60 and res["precision"] == "fp32"
    assert all(0 <= a <= res["accuracy"]["clean"] for a in res["accuracy"].values())


def test_an_interrupted_eval_resumes_at_its_first_unfinished_attack(capsys, tmp_path, teacher_ckpts, monkeypatch):
    """--partial keeps each finished attack; a rerun takes those and runs only the rest, and the
    result equals an uninterrupted run's (each attack seeds its own random start)."""
    import ciard.evaluate as ev
    clean, robust = teacher_ckpts
    argv = ["eval", "--checkpoint", clean, "--n", "40", "--attacks", "clean,fgsm,pgd_sat", "--json"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    whole = json.loads(out)["results"]
    # which images: the fingerprint the zoo's paired comparisons match reports on
    images = json.loads(out)["images"]
    assert len(images) == 64 and images != json.loads(_run(capsys, *argv[:4], "41", *argv[5:])[1])["images"]

    partial = tmp_path / "eval.partial.json"
    real, calls, session = ev.robust_correct, [], {"ends_during_pgd": True}

    def interrupted(model, xb, yb, attack, source):
        calls.append(attack)
        if session["ends_during_pgd"] and attack is not None and "PGD" in repr(attack):
            raise KeyboardInterrupt
        return real(model, xb, yb, attack, source)
    monkeypatch.setattr(ev, "robust_correct", interrupted)
    assert main(argv + ["--partial", str(partial)]) != 0
    assert "interrupted" in capsys.readouterr().err
    kept = json.loads(partial.read_text())["results"]
    assert set(kept) == {"clean", "fgsm"}

    calls.clear()
    session["ends_during_pgd"] = False
    code, out, err = _run(capsys, *argv[:-1], "--partial", str(partial), "--json")
    assert code == 0, err
    resumed = json.loads(out)["results"]
    assert calls and all("PGD" in repr(a) for a in calls)          # clean and FGSM not run again
    assert resumed["fgsm"]["seconds"] == kept["fgsm"]["seconds"]
    assert {k: (v["correct"], v["mask"]) for k, v in resumed.items()} == \
        {k: (v["correct"], v["mask"]) for k, v in whole.items()}
    assert set(json.loads(partial.read_text())["results"]) == {"clean", "fgsm", "pgd_sat"}

    # other weights (the robust teacher) or other images: the kept results are not theirs
    calls.clear()
    code, out, err = _run(capsys, "eval", "--checkpoint", robust, "--n", "40", "--attacks", "clean,fgsm",
                          "--partial", str(partial), "--json")
    assert code == 0 and len(calls) == 2          # clean and FGSM, run for these weights
    # the same weights and images with another seed (other random starts): PGD runs again
    calls.clear()
    code, out, err = _run(capsys, *argv[:-1], "--partial", str(partial), "--seed", "1", "--json")
    assert code == 0 and len(calls) == 3 and json.loads(out)["seed"] == 1
    calls.clear()
    code, out, err = _run(capsys, "eval", "--checkpoint", robust, "--n", "30", "--attacks", "clean,fgsm",
                          "--partial", str(partial), "--json")
    assert code == 0 and len(calls) == 2


def test_an_attack_interrupted_between_batches_resumes_at_its_next_batch(capsys, tmp_path, teacher_ckpts,
                                                                          monkeypatch):
    """Within an attack, --partial keeps each finished batch's masks and random state: a stop
    loses at most the batch under way (an AutoAttack of 1,000 images is about an hour on a
    2-core CPU), and the resumed result equals an uninterrupted run's, random starts included."""
    import hashlib

    import ciard.evaluate as ev
    clean, _ = teacher_ckpts
    argv = ["eval", "--checkpoint", clean, "--n", "40", "--batch-size", "16", "--attacks", "clean,pgd_sat", "--json"]
    real, calls, states, stop = ev.robust_correct, [], [], {"at": 0}

    def interrupted(model, xb, yb, attack, source):
        if attack is not None:
            calls.append(len(xb))
            # the random state each batch's random starts are drawn from
            states.append(hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest())
            if len(calls) == stop["at"]:
                raise KeyboardInterrupt
        return real(model, xb, yb, attack, source)
    monkeypatch.setattr(ev, "robust_correct", interrupted)
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    whole, whole_states = json.loads(out)["results"], list(states)
    assert calls == [16, 16, 8] and len(set(whole_states)) == 3

    partial = tmp_path / "eval.partial.json"
    calls.clear()
    stop["at"] = 2
    assert main(argv + ["--partial", str(partial)]) != 0             # stopped in PGD's 2nd batch
    kept = json.loads(partial.read_text())
    assert set(kept["results"]) == {"clean"}
    assert kept["unfinished"]["key"] == "pgd_sat" and kept["unfinished"]["done"] == 16

    calls.clear()
    stop["at"] = 1                                                   # stopped again before a new batch ends
    assert main(argv + ["--partial", str(partial)]) != 0
    assert json.loads(partial.read_text())["unfinished"]["done"] == 16   # what was kept is still there

    calls.clear()
    states.clear()
    stop["at"] = 0
    code, out, err = _run(capsys, *argv[:-1], "--partial", str(partial), "--json")
    assert code == 0, err
    assert calls == [16, 8] and states == whole_states[1:]           # images 16-39, the same random state
    resumed = json.loads(out)["results"]
    assert {k: (v["correct"], v["mask"]) for k, v in resumed.items()} == \
        {k: (v["correct"], v["mask"]) for k, v in whole.items()}
    assert "unfinished" not in json.loads(partial.read_text())


def test_eval_bad_inputs(capsys, tmp_path, teacher_ckpts):
    code, _, err = _run(capsys, "eval", "--checkpoint", str(tmp_path / "none.pt"))
    assert code == 2 and "checkpoint not found" in err
    code, _, err = _run(capsys, "eval", "--checkpoint", teacher_ckpts[0], "--attacks", "pgd,xyz")
    assert code == 2 and "unknown attack 'pgd'" in err
    code, _, err = _run(capsys, "eval", "--checkpoint", teacher_ckpts[0], "--attacks", "bb_cw")
    assert code == 2 and "--source" in err


def test_data_info(capsys):
    code, out, _ = _run(capsys, "data", "info", "--json")
    info = json.loads(out)
    assert code == 0 and info["train"] == 5000 and info["val"] == 0 and info["test"] == 1000


def test_consistency_warnings_flag_masking_patterns():
    from ciard.evaluate import consistency_warnings
    r = lambda a: {"accuracy": a}  # noqa: E731
    ok = {"clean": r(0.8), "fgsm": r(0.5), "pgd_sat": r(0.4), "cw": r(0.38), "bb_cw": r(0.6), "square": r(0.7)}
    assert consistency_warnings(ok) == []
    bad = {"clean": r(0.8), "fgsm": r(0.3), "pgd_sat": r(0.4), "cw": r(0.38), "bb_cw": r(0.2)}
    warnings = consistency_warnings(bad)
    assert any(w.startswith("pgd_sat") for w in warnings) and any(w.startswith("bb_cw") for w in warnings)
