"""The zoo's hyperparameter rules (tools/choose_lr.py, tools/choose_kdiga_gamma.py) read pilot
runs' validation records only, and pick what the records say is best."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import choose_kdiga_gamma  # noqa: E402
import choose_lr  # noqa: E402


def _script(root: Path, lrs: str = "0.2 0.5 1.0", methods: str = "ciard rslad", gammas: str = "0.1 1 10",
            newer: str = "dgad adaad") -> Path:
    """A stand-in for tools/train_zoo.sh: only the candidate lines the rules read."""
    script = root / "train_zoo.sh"
    script.write_text(f'LR_CANDIDATES="{lrs}"\nLR_METHODS="{methods}"\nGAMMA_CANDIDATES="{gammas}"\n'
                      f'NEWER_LR_METHODS="{newer}"\n')
    return script


def _pilot(root: Path, name: str, scores: list[tuple[float, float]], state: str = "finished",
           lr: float = 0.2, gamma: float = 1.0, error: str | None = None, **run) -> None:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({"state": state, "error": error}))
    records = [{"kind": "step", "step": 1, "loss": 2.0}]
    records += [{"kind": "epoch", "epoch": i + 1, "student_clean": c, "student_pgd": p, "score": (c + p) / 2}
                for i, (c, p) in enumerate(scores)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "config.json").write_text(json.dumps({
        "optim": {"epochs": 2, "batch_size": 128, "lr_schedule": "cosine", "lr": lr},
        "data": {"train_subset": 10000}, "attack": {"pgd_steps": 5},
        "method": {"method": name.split("-")[1], "kdiga_alpha": 0.5, "kdiga_temp": 1.0, "kdiga_gamma": gamma},
        "run": {"name": name, "eval_size": 1000, "eval_pgd_steps": 10, "seed": 0} | run}))


def test_the_gamma_rule_takes_each_pilots_best_epoch_and_ignores_other_directories(tmp_path):
    script = _script(tmp_path, gammas="0.1 1")
    root = tmp_path / "runs"
    _pilot(root, "gamma-kdiga-0.1", [(0.60, 0.10), (0.70, 0.12)], gamma=0.1)   # best 0.41
    _pilot(root, "gamma-kdiga-1", [(0.55, 0.30), (0.50, 0.25)])                 # best 0.425 (epoch 1)
    _pilot(root, "gamma-kdiga-10", [(0.90, 0.90)], gamma=10)                    # not a candidate now
    _pilot(root, "lr-ciard-0.2", [(0.99, 0.99)])                                # another rule's pilot
    result = choose_kdiga_gamma.choose(root, script)
    assert result["chosen_gamma"] == 1.0 and result["candidates"] == [0.1, 1.0]
    assert set(result["runs"]) == {"0.1", "1"} and result["ignored_directories"] == ["gamma-kdiga-10"]
    assert result["runs"]["1"]["epoch"] == 1 and result["runs"]["1"]["score"] == pytest.approx(0.425)
    assert result["pilot_budget"]["lr"] == 0.2 and result["pilot_budget"]["kdiga_alpha"] == 0.5
    assert result["evaluation"]["eval_size"] == 1000 and result["chosen_at_edge"] is True


def test_a_gamma_tie_goes_to_the_weaker_alignment(tmp_path):
    script = _script(tmp_path, gammas="10 2 50")
    for g in ("10", "2", "50"):   # "10" sorts before "2" as a string: the order must be numeric
        _pilot(tmp_path / "runs", f"gamma-kdiga-{g}", [(0.5, 0.3)], gamma=float(g))
    result = choose_kdiga_gamma.choose(tmp_path / "runs", script)
    assert result["chosen_gamma"] == 2.0 and result["chosen_at_edge"] is True


def test_a_diverged_gamma_pilot_is_left_out_and_said(tmp_path):
    script = _script(tmp_path, gammas="1 10 100")
    root = tmp_path / "runs"
    _pilot(root, "gamma-kdiga-1", [(0.5, 0.2)])
    _pilot(root, "gamma-kdiga-10", [(0.5, 0.3)], gamma=10)
    _pilot(root, "gamma-kdiga-100", [], state="failed", gamma=100, error="training diverged at step 40")
    result = choose_kdiga_gamma.choose(root, script)
    # 10 is the largest gamma whose pilot finished: a larger one might have done better had it not
    # diverged, so the choice is at the edge (as the lr rule counts it)
    assert result["chosen_gamma"] == 10.0 and result["chosen_at_edge"] is True
    assert result["excluded"] == {"gamma-kdiga-100": "training diverged at step 40"}


def test_a_crashed_pilot_stops_the_choice(tmp_path):
    """Only a diverged pilot is left out (as train_zoo.sh's pilot step does); any other failure
    is a fault to look at, not a result."""
    script = _script(tmp_path, gammas="1 10")
    _pilot(tmp_path / "runs", "gamma-kdiga-1", [(0.5, 0.3)])
    _pilot(tmp_path / "runs", "gamma-kdiga-10", [], state="failed", gamma=10, error="RuntimeError: out of memory")
    with pytest.raises(SystemExit, match="gamma-kdiga-10 failed: RuntimeError"):
        choose_kdiga_gamma.choose(tmp_path / "runs", script)


def test_gamma_pilots_at_different_lrs_are_refused_but_a_resume_on_another_device_is_not(tmp_path):
    script = _script(tmp_path, gammas="1 10")
    _pilot(tmp_path / "a", "gamma-kdiga-1", [(0.5, 0.3)], lr=0.2)
    _pilot(tmp_path / "a", "gamma-kdiga-10", [(0.5, 0.3)], lr=0.5, gamma=10)   # from an older lr rule
    with pytest.raises(SystemExit, match="differ in optim.lr"):
        choose_kdiga_gamma.choose(tmp_path / "a", script)
    _pilot(tmp_path / "b", "gamma-kdiga-1", [(0.5, 0.3)], device="auto", threads=0)
    _pilot(tmp_path / "b", "gamma-kdiga-10", [(0.5, 0.4)], gamma=10, device="cpu", threads=2)
    assert choose_kdiga_gamma.choose(tmp_path / "b", script)["chosen_gamma"] == 10.0


@pytest.mark.parametrize("state", [None, "running", "stopped"])
def test_a_gamma_pilot_that_did_not_run_or_end_stops_the_choice(tmp_path, state):
    script = _script(tmp_path, gammas="1 10")
    _pilot(tmp_path / "runs", "gamma-kdiga-1", [(0.5, 0.3)])
    if state:
        _pilot(tmp_path / "runs", "gamma-kdiga-10", [(0.9, 0.9)], state=state, gamma=10)
    with pytest.raises(SystemExit, match="gamma-kdiga-10 has not (run|finished)"):
        choose_kdiga_gamma.choose(tmp_path / "runs", script)


def test_pilots_of_different_budgets_or_without_a_held_out_split_are_refused(tmp_path):
    script = _script(tmp_path, gammas="1 10")
    _pilot(tmp_path / "a", "gamma-kdiga-1", [(0.5, 0.3)])
    _pilot(tmp_path / "a", "gamma-kdiga-10", [(0.5, 0.3)], gamma=10, eval_pgd_steps=20)
    with pytest.raises(SystemExit, match="differ in run.eval_pgd_steps"):
        choose_kdiga_gamma.choose(tmp_path / "a", script)
    _pilot(tmp_path / "b", "gamma-kdiga-1", [(0.5, 0.3)], eval_size=0)
    _pilot(tmp_path / "b", "gamma-kdiga-10", [(0.5, 0.3)], gamma=10, eval_size=0)
    with pytest.raises(SystemExit, match="no held-out split"):
        choose_kdiga_gamma.choose(tmp_path / "b", script)


def test_the_lr_rule_averages_over_methods_and_needs_every_method(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    root = tmp_path / "runs"
    script = _script(tmp_path, lrs="0.2 0.5 1.0", methods="ciard rslad")
    # lr 0.5 is best for ciard alone among complete lrs, 0.2 on the mean; at 1.0 rslad diverged,
    # so 1.0 cannot be chosen, though ciard alone scored best there
    _pilot(root, "lr-ciard-0.2", [(0.60, 0.30)], lr=0.2)
    _pilot(root, "lr-rslad-0.2", [(0.50, 0.30)], lr=0.2)
    _pilot(root, "lr-ciard-0.5", [(0.70, 0.30)], lr=0.5)
    _pilot(root, "lr-rslad-0.5", [(0.30, 0.20)], lr=0.5)
    _pilot(root, "lr-ciard-1.0", [(0.95, 0.95)], lr=1.0)
    _pilot(root, "lr-rslad-1.0", [], state="failed", lr=1.0, error="training diverged at step 12")
    _pilot(root, "lr-ard-0.2", [(0.99, 0.99)], lr=0.2)    # not among LR_METHODS: ignored
    _pilot(root, "lr-dgad-0.2", [(0.99, 0.99)], lr=0.2)   # a newer method's (choose_each's): not listed
    choose_lr.main(str(root), script)
    printed = capsys.readouterr()
    assert printed.out.strip() == "0.2"
    rule = json.loads((tmp_path / "checkpoints" / "zoo-lr-rule.json").read_text())
    assert rule["chosen_lr"] == 0.2 and rule["methods"] == ["ciard", "rslad"]
    assert rule["candidates"] == [0.2, 0.5, 1.0] and set(rule["mean_score"]) == {"0.2", "0.5"}
    assert rule["not_eligible"] == {"1.0": ["rslad"]}
    assert rule["excluded"] == {"lr-rslad-1.0": "training diverged at step 12"}
    assert rule["ignored_directories"] == ["lr-ard-0.2"]
    # each method's own best among all its finished pilots is recorded beside the choice
    assert rule["best_lr_by_method"] == {"ciard": 1.0, "rslad": 0.2}
    assert rule["chosen_at_edge"] is True and "smallest" in printed.err
    assert "lr-rslad-1.0 left out: training diverged" in printed.err
    assert rule["evaluation"]["eval_pgd_steps"] == 10
    # the pilots have no training log here: where they trained is said to be unknown, not guessed
    assert rule["trained_on"] == ["machine not recorded"]
    assert "different machines" not in printed.err


def test_a_rule_says_when_its_pilots_trained_on_different_machines(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    script = _script(tmp_path, gammas="0.1 1")
    root = tmp_path / "runs"
    _pilot(root, "gamma-kdiga-0.1", [(0.6, 0.1)], gamma=0.1)
    _pilot(root, "gamma-kdiga-1", [(0.5, 0.3)])
    a, b = "CPU: A, fp32 only (no AVX-512 BF16)", "CPU: B, AVX-512 BF16/AMX"
    # one pilot on one machine (one session from before machines were logged), the other resumed
    # on a second machine: the rule lists machines, not the pilots' summaries
    (root / "gamma-kdiga-0.1" / "train-seconds").write_text(f"30 {a}\n40\n")
    (root / "gamma-kdiga-1" / "train-seconds").write_text(f"20 {a}\n10 {b}\n")
    choose_kdiga_gamma.main(str(root), script)
    rule = json.loads((tmp_path / "checkpoints" / "zoo-kdiga-gamma.json").read_text())
    assert rule["runs"]["1"]["trained_on"] == f"{a}: 20 s; {b}: 10 s" and rule["runs"]["1"]["machines"] == [a, b]
    assert rule["trained_on"] == [a, b, "machine not recorded"]
    assert "trained on different machines" in capsys.readouterr().err
    # all on one machine, some sessions unlogged: no note
    (root / "gamma-kdiga-1" / "train-seconds").write_text(f"20 {a}\n")
    choose_kdiga_gamma.main(str(root), script)
    assert "different machines" not in capsys.readouterr().err
    # a damaged log stops the choice with a message naming it
    (root / "gamma-kdiga-1" / "train-seconds").write_text("oops\n")
    with pytest.raises(SystemExit, match="gamma-kdiga-1.*does not start with seconds"):
        choose_kdiga_gamma.main(str(root), script)


def test_the_rules_read_the_chains_own_candidate_lines():
    """choose_lr and choose_kdiga_gamma take their candidates from tools/train_zoo.sh's lines,
    which its lr and kdiga-gamma steps loop over."""
    from pilots import SCRIPT, script_list
    text = SCRIPT.read_text()
    assert script_list("LR_CANDIDATES") and script_list("LR_METHODS") and script_list("GAMMA_CANDIDATES")
    assert script_list("NEWER_LR_METHODS") == ["dgad", "adaad", "kdiga", "peeraid"]
    assert "for lr in $LR_CANDIDATES; do for m in $LR_METHODS; do pilot" in text
    assert "for m in $NEWER_LR_METHODS; do for lr in $LR_CANDIDATES; do pilot" in text
    assert "for g in $GAMMA_CANDIDATES; do pilot" in text


def test_the_newer_methods_each_take_the_lr_their_own_pilots_score_best_at(tmp_path, monkeypatch, capsys):
    """DGAD's KL is summed over classes and KDIGA and PeerAiD add full-scale cross-entropy: the
    shared lr, chosen for class-averaged KL, is not theirs. Each newer method gets its own best
    candidate, from the same kind of pilots."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    root = tmp_path / "runs"
    script = _script(tmp_path, lrs="0.1 0.5 1.0", newer="dgad adaad")
    _pilot(root, "lr-dgad-0.1", [(0.35, 0.15), (0.40, 0.18)], lr=0.1, precision="fp32")   # best 0.29
    _pilot(root, "lr-dgad-0.5", [(0.30, 0.15)], lr=0.5, precision="fp32")
    _pilot(root, "lr-dgad-1.0", [(0.10, 0.10)], lr=1.0, precision="fp32")                 # collapsed
    _pilot(root, "lr-adaad-0.1", [(0.25, 0.10)], lr=0.1, precision="fp32")
    _pilot(root, "lr-adaad-0.5", [], state="failed", lr=0.5, precision="fp32", error="training diverged at step 3")
    _pilot(root, "lr-adaad-1.0", [(0.34, 0.21)], lr=1.0, precision="fp32")
    _pilot(root, "lr-ciard-0.5", [(0.99, 0.99)], lr=0.5, precision="fp32")    # the shared rule's: not listed
    _pilot(root, "lr-dgad-0.2", [(0.99, 0.99)], lr=0.2, precision="fp32")     # not a candidate: ignored
    choose_lr.main_newer(str(root), script)
    printed = capsys.readouterr()
    assert printed.out.split("\n")[:2] == ["dgad 0.1", "adaad 1"]
    rule = json.loads((tmp_path / "checkpoints" / "zoo-lr-newer.json").read_text())
    assert rule["chosen_lr"] == {"dgad": 0.1, "adaad": 1.0}
    assert rule["runs"]["dgad"]["0.1"]["epoch"] == 2 and set(rule["runs"]["adaad"]) == {"0.1", "1.0"}
    assert rule["excluded"] == {"lr-adaad-0.5": "training diverged at step 3"}
    assert rule["ignored_directories"] == ["lr-dgad-0.2"]
    assert rule["chosen_at_edge"] == {"dgad": True, "adaad": True}
    assert rule["pilot_budget"]["precision"] == "fp32" and rule["evaluation"]["eval_size"] == 1000
    assert "adaad: lr 1 (at the edge" in printed.err and "failed" in printed.err
    # the shared rule's file is not touched, and a pilot at another precision is refused
    assert not (tmp_path / "checkpoints" / "zoo-lr-rule.json").exists()
    (root / "lr-dgad-0.5" / "config.json").write_text(
        (root / "lr-dgad-0.5" / "config.json").read_text().replace('"fp32"', '"bf16"'))
    with pytest.raises(SystemExit, match="differ in run.precision"):
        choose_lr.choose_each(root, script)


def test_a_newer_method_without_a_finished_pilot_stops_its_choice(tmp_path):
    script = _script(tmp_path, lrs="0.1 1.0", newer="peeraid")
    _pilot(tmp_path / "runs", "lr-peeraid-0.1", [], state="failed", lr=0.1, error="training diverged at step 1")
    _pilot(tmp_path / "runs", "lr-peeraid-1.0", [], state="failed", lr=1.0, error="training diverged at step 1")
    with pytest.raises(SystemExit, match="no finished lr pilot for peeraid"):
        choose_lr.choose_each(tmp_path / "runs", script)
