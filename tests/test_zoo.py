"""Every shipped checkpoint: present, hash as recorded, loads, runs, and its figures are sane."""
import re
from pathlib import Path

import pytest
import torch

import ciard
from ciard import checkpoints, zoo
from ciard.cli import main
from ciard.evaluate import consistency_warnings
from ciard.zoo import read_manifest

ENTRIES = read_manifest()["entries"]


def test_manifest_is_not_empty_and_names_are_unique():
    assert ENTRIES, "checkpoints/manifest.json lists no model"
    assert len({e["name"] for e in ENTRIES}) == len(ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_entry_loads_matches_its_hash_and_runs(entry):
    path = zoo.ZOO_DIR / entry["file"]
    assert path.is_file()
    assert checkpoints.sha256(path) == entry["sha256"]
    assert path.stat().st_size < 20 * 2**20
    model = ciard.load_model(f"zoo:{entry['name']}")
    assert model.arch == entry["arch"] and not model.training
    with torch.no_grad():
        out = model(torch.rand(4, 3, 32, 32))
    assert out.shape == (4, entry["num_classes"]) and torch.isfinite(out).all()
    for key in ("role", "dataset", "command", "hardware", "eval_command"):
        assert entry.get(key), key
    acc = entry["evaluation"]["accuracy"]
    # the gradient-masking ordering: PGD <= FGSM <= clean
    assert acc.get("pgd_sat", 0) <= acc.get("fgsm", 1) <= acc["clean"]


CIFAR10 = [e for e in ENTRIES if e["dataset"] == "cifar10"]


def _report(**accuracy):
    return {k: {"accuracy": v} for k, v in accuracy.items()}


def test_consistency_warnings_flag_each_sign_of_gradient_masking():
    """The checks every AutoAttack report of the zoo passed through (``eval`` prints them and
    ``zoo merge-eval`` keeps them in the entry): consistent figures pass, each broken ordering
    is named."""
    fine = _report(clean=0.8, fgsm=0.5, pgd_sat=0.4, pgd_trades=0.42, cw=0.41, autoattack=0.38,
                   bb_pgd_trades=0.6, bb_cw=0.6)
    assert consistency_warnings(fine) == []
    above = consistency_warnings({**fine, **_report(autoattack=0.45)})
    assert len(above) == 1 and above[0].startswith("autoattack (45.00%) above pgd_sat")
    below = consistency_warnings({**fine, **_report(bb_cw=0.3)})
    assert len(below) == 1 and below[0].startswith("bb_cw (30.00%) below")


def _aa_reports(entry: dict) -> list[dict]:
    return [x for x in entry["evaluation"].get("extra", []) if "autoattack" in x["accuracy"]]


WITH_AA = [e for e in CIFAR10 if _aa_reports(e)]


def _chain_steps() -> set[str]:
    """The steps of ``tools/train_zoo.sh chain`` (its CHAIN variable)."""
    text = (Path(__file__).resolve().parents[1] / "tools" / "train_zoo.sh").read_text()
    m = re.search(r'^CHAIN="(.*?)"', text, re.S | re.M)
    assert m, "no CHAIN in tools/train_zoo.sh"
    return set(m.group(1).replace("\\\n", " ").split())


def test_every_cifar10_entry_has_an_autoattack_report_or_the_chain_step_that_adds_it():
    """The retraining chain registers an entry after its full-test evaluation and adds its
    AutoAttack report later (its ``aa-NAME`` step): until then the entry must be one of the
    chain's (a teacher it trained, or a student distilled from its robust teacher, which is
    what its ``aa`` step accepts) and have that step in the chain. Any other entry without one
    fails."""
    assert len(WITH_AA) >= 2, "the zoo has lost its AutoAttack reports"
    steps = _chain_steps()
    assert "aa-ciard-resnet20" in steps and "aa-robust-airbench94" in steps   # the parse found them
    missing = [e for e in CIFAR10 if not _aa_reports(e)]
    orphans = [e["name"] for e in missing
               if f"aa-{e['name'].removeprefix('cifar10-')}" not in steps
               or not (e["name"].endswith("airbench94") or "zoo:cifar10-robust-airbench94" in e["command"])]
    assert not orphans, f"no AutoAttack report and no chain step to add one: {orphans}"


@pytest.mark.parametrize("entry", WITH_AA, ids=[e["name"] for e in WITH_AA])
def test_cifar10_entries_autoattack_report_passes_the_checks(entry):
    """Each AutoAttack report of a CIFAR-10 entry is on >= 1,000 images and passes the checks."""
    rep = _aa_reports(entry)[-1]
    assert rep["n"] >= 1000 and rep["command"]
    assert consistency_warnings({k: {"accuracy": v} for k, v in rep["accuracy"].items()}) == []


def test_auto_teachers_resolve_to_the_zoo_defaults():
    for role in ("clean_teacher", "robust_teacher"):
        path = zoo.default_teacher(role, "default")
        assert path is not None and path.is_file()


def test_zoo_command_lists_entries(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for e in ENTRIES:
        assert e["name"] in out


def test_zoo_add_then_merge_eval_keeps_each_report_with_its_n(tmp_path, monkeypatch, teacher_ckpts, capsys):
    """`zoo add` with a full-test report, then `zoo merge-eval` with a 1,000-image AutoAttack one."""
    import json

    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")

    def report(n, acc, warnings=()):
        return {"n": n, "eps": 8 / 255, "dataset": "cifar10", "precision": "fp32", "source": None,
                "accuracy": acc, "warnings": list(warnings),
                "results": {k: {"attack": f"{k} attack"} for k in acc}}
    full, aa = tmp_path / "full.json", tmp_path / "aa.json"
    full.write_text(json.dumps(report(10000, {"clean": 0.6, "pgd_sat": 0.3})))
    aa.write_text(json.dumps(report(1000, {"clean": 0.61, "pgd_sat": 0.31, "autoattack": 0.27}, ["w"])))
    assert main(["zoo", "add", "--name", "m", "--checkpoint", teacher_ckpts[0], "--role", "student",
                 "--train-command", "python -m ciard train ...", "--eval-json", str(full),
                 "--eval-command", "eval full"]) == 0
    assert main(["zoo", "merge-eval", "--name", "m", "--eval-json", str(aa), "--eval-command", "eval aa"]) == 0
    # merging the same command again replaces, not duplicates
    assert main(["zoo", "merge-eval", "--name", "m", "--eval-json", str(aa), "--eval-command", "eval aa"]) == 0
    (entry,) = zoo.read_manifest()["entries"]
    ev = entry["evaluation"]
    assert ev["accuracy"] == {"clean": 0.6, "pgd_sat": 0.3, "autoattack": 0.27}  # full-test figures kept
    assert ev["n_by_attack"] == {"clean": 10000, "pgd_sat": 10000, "autoattack": 1000}
    assert [x["command"] for x in ev["extra"]] == ["eval aa"] and ev["extra"][0]["accuracy"]["clean"] == 0.61
    assert ev["warnings"] == ["(n=1000) w"]
    assert checkpoints.sha256(tmp_path / "m.pt") == entry["sha256"]
    capsys.readouterr()
    assert main(["zoo"]) == 0
    assert "10000 (autoattack: 1000)" in capsys.readouterr().out
    assert main(["zoo", "--markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| name | role | method | clean |")
    assert table[2].startswith("| m | student |") and "| 60.00 |" in table[2] and "| 27.00 |" in table[2]
    assert "| 44.00 |" in table[2]   # (clean + AA) / 2 on AA's own images = (61 + 27) / 2
    assert main(["zoo", "merge-eval", "--name", "nope", "--eval-json", str(aa), "--eval-command", "x"]) != 0
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert main(["zoo", "merge-eval", "--name", "m", "--eval-json", str(empty), "--eval-command", "x"]) == 2
    assert main(["zoo", "merge-eval", "--name", "m", "--eval-json", str(tmp_path / "gone.json"),
                 "--eval-command", "x"]) == 2


def test_a_retrained_entry_keeps_its_place_in_the_manifest(tmp_path, monkeypatch, teacher_ckpts):
    """The app's default student is the manifest's first: re-adding it must not move it last."""
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    for name in ("first", "second", "third"):
        assert main(["zoo", "add", "--name", name, "--checkpoint", teacher_ckpts[0], "--role", "student",
                     "--train-command", "python -m ciard train ..."]) == 0
    assert main(["zoo", "add", "--name", "first", "--checkpoint", teacher_ckpts[1], "--role", "student",
                 "--train-command", "python -m ciard train --retrained"]) == 0
    entries = zoo.read_manifest()["entries"]
    assert [e["name"] for e in entries] == ["first", "second", "third"]
    assert entries[0]["command"] == "python -m ciard train --retrained"


def test_training_sessions_sum_the_seconds_and_name_every_machine():
    fp32 = "CPU: AMD EPYC (2 threads), x86_64, fp32 only (no AVX-512 BF16)"
    bf16 = "CPU: Intel Xeon (2 threads), x86_64, AVX-512 BF16/AMX"
    assert zoo.training_sessions(f"100 {fp32}\n250 {fp32}\n") == (350.0, fp32)
    total, where = zoo.training_sessions(f"100 {fp32}\n300 {bf16}\n\n50 {fp32}\n")
    assert total == 450.0 and where == f"{bf16}: 300 s; {fp32}: 150 s"     # most time first
    # lines from before machines were logged: counted, and said to be unknown
    assert zoo.training_sessions(f"10\n20 {bf16}\n") == (30.0, f"{bf16}: 20 s; machine not recorded: 10 s")
    # only such lines: unknown, never guessed to be the machine that reads the log
    assert zoo.training_sessions("10\n20\n") == (30.0, "machine not recorded")
    assert zoo.machine_seconds(f"10\n20 {bf16}\n5 {bf16}\n") == {"machine not recorded": 10.0, bf16: 25.0}
    with pytest.raises(ValueError, match="does not start with seconds"):
        zoo.training_sessions("CPU: something\n")


def test_zoo_add_takes_time_and_hardware_from_a_training_log(tmp_path, monkeypatch, teacher_ckpts, capsys):
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    log = tmp_path / "train-seconds"
    log.write_text("120 CPU: A, fp32 only (no AVX-512 BF16)\n60 CPU: B, AVX-512 BF16/AMX\n")
    add = ["zoo", "add", "--name", "m", "--checkpoint", teacher_ckpts[0], "--role", "student",
           "--train-command", "python -m ciard train ..."]
    assert main(add + ["--train-log", str(log)]) == 0
    entry = zoo.read_manifest()["entries"][0]
    assert entry["train_seconds"] == 180.0
    assert entry["hardware"] == "CPU: A, fp32 only (no AVX-512 BF16): 120 s; CPU: B, AVX-512 BF16/AMX: 60 s"
    assert main(add + ["--train-log", str(log), "--train-seconds", "5"]) == 2
    assert main(add + ["--train-log", str(tmp_path / "gone")]) == 2
    assert "cannot read --train-log" in capsys.readouterr().err
    log.write_text("120\n")                               # a log from before machines were logged
    assert main(add + ["--train-log", str(log)]) == 0
    assert zoo.read_manifest()["entries"][0]["hardware"] == "machine not recorded"
    assert main(add + ["--train-seconds", "5"]) == 0      # no log: this machine
    assert zoo.read_manifest()["entries"][0]["hardware"] == zoo.hardware()


def test_zoo_default_moves_auto_to_another_teacher_of_the_same_role(tmp_path, monkeypatch, teacher_ckpts, capsys):
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    add = ["zoo", "add", "--checkpoint", teacher_ckpts[0], "--train-command", "python -m ciard train ..."]
    assert main(add + ["--name", "old-clean", "--role", "clean_teacher", "--default"]) == 0
    assert main(add + ["--name", "old-robust", "--role", "robust_teacher", "--default"]) == 0
    assert main(add + ["--name", "new-clean", "--role", "clean_teacher"]) == 0
    assert main(add + ["--name", "demo-clean", "--role", "clean_teacher", "--dataset", "default", "--default"]) == 0
    assert main(add + ["--name", "a-student", "--role", "student"]) == 0
    assert zoo.default_teacher("clean_teacher").name == "old-clean.pt"
    capsys.readouterr()
    assert main(["zoo", "default", "--name", "new-clean"]) == 0
    assert "new-clean is now the default clean teacher for cifar10" in capsys.readouterr().out
    assert zoo.default_teacher("clean_teacher").name == "new-clean.pt"
    flags = {e["name"]: e["default"] for e in zoo.read_manifest()["entries"]}
    # the robust teacher and the other dataset's teacher keep theirs
    assert flags == {"old-clean": False, "old-robust": True, "new-clean": True, "demo-clean": True,
                     "a-student": False}
    assert main(["zoo", "default", "--name", "a-student"]) == 2
    assert "only teachers have a default" in capsys.readouterr().err
    assert main(["zoo", "default", "--name", "nope"]) == 2
    assert "no zoo entry named 'nope'" in capsys.readouterr().err


def test_the_push_view_knows_each_zoo_students_push_weight_from_its_checkpoint(runs_dir):
    """The manifest records CIARD's push weight from the checkpoint's config (not the command,
    which omits a default): the push view finds the no-push ablation and labels the others."""
    from ciard.studio import probe
    for e in read_manifest()["entries"]:
        if e.get("method") == "ciard":
            cfg = checkpoints.load(zoo.ZOO_DIR / e["file"]).get("config") or {}
            assert e["push_weight"] == cfg["method"]["push_weight"], e["name"]
    cands = {c.spec: c for c in probe.student_candidates(None).values()}
    assert cands["zoo:cifar10-ciard-resnet20"].push_weight == 1.0      # its command has no --push-weight
    assert not cands["zoo:cifar10-ciard-resnet20"].without_push
    assert cands["zoo:cifar10-nopush-resnet20"].without_push
    assert cands["zoo:cifar10-rslad-resnet20"].push_weight is None and not cands["zoo:cifar10-rslad-resnet20"].without_push
    assert any(label == "zoo: cifar10-ciard-resnet20 (ciard, push 1)" for label in probe.student_candidates(None))


def test_zoo_add_records_the_push_weight_of_a_ciard_checkpoint(tmp_path, monkeypatch, teacher_ckpts):
    from ciard.config import Config
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    model = checkpoints.load_model(teacher_ckpts[0])
    for name, cfg in (("ciard-half", Config().override(method="ciard", push_weight=0.5)),
                      ("rslad", Config().override(method="rslad"))):
        src = checkpoints.save_model(model, tmp_path / f"{name}-src.pt", config=cfg.to_dict())
        assert main(["zoo", "add", "--name", name, "--checkpoint", str(src), "--role", "student",
                     "--train-command", "python -m ciard train ..."]) == 0
    flags = {e["name"]: e["push_weight"] for e in zoo.read_manifest()["entries"]}
    assert flags == {"ciard-half": 0.5, "rslad": None}


def test_the_readme_shows_the_retrained_zoo_as_the_manifest_has_it():
    """README.md's generated block (tools/readme_zoo.py) matches checkpoints/manifest.json: an
    entry the chain registered shows in the README with the commit that registered it, or CI
    says so (fix: python tools/readme_zoo.py)."""
    import sys
    sys.path.insert(0, str(Path(ciard.__file__).resolve().parents[1] / "tools"))
    import readme_zoo
    text = readme_zoo.README.read_text()
    assert readme_zoo.render(text, zoo.entries()) == text, \
        "README.md's retrained-zoo block is out of date: run python tools/readme_zoo.py"
    landed = readme_zoo.retrained(zoo.entries())
    assert {e["name"] for e in landed} >= set(readme_zoo.TEACHERS)
    block = text[text.index(readme_zoo.BEGIN):text.index(readme_zoo.END)]
    assert all(f"| {e['name']} |" in block for e in landed)


def test_the_retrained_zoo_block_adds_paired_intervals_once_ciard_lands():
    import sys
    sys.path.insert(0, str(Path(ciard.__file__).resolve().parents[1] / "tools"))
    import readme_zoo
    teachers = [e for e in zoo.entries() if e["name"] in readme_zoo.TEACHERS]
    assert "paired 95 %" not in readme_zoo.block(teachers)
    # the clean teacher kept from the first zoo is shown with what its attack columns are not
    assert "cifar10-clean-resnet20 is the first zoo's entry" in readme_zoo.block(teachers)
    assert "first zoo's entry" not in readme_zoo.block([e for e in teachers if e["name"] != readme_zoo.FIRST_ZOO_CLEAN])
    # a first-zoo student (distilled from the first zoo's robust teacher, its report without
    # per-image masks), made from a student entry whichever zoo it is from now
    student = next(e for e in zoo.entries() if e["name"] == "cifar10-nopush-resnet20")
    old_student = dict(student, command=student["command"].replace(f"zoo:{readme_zoo.ROBUST}", "zoo:cifar10-robust-resnet20"),
                       evaluation={k: v for k, v in student["evaluation"].items() if k != "masks"})
    assert f"zoo:{readme_zoo.ROBUST}" not in old_student["command"]
    assert readme_zoo.retrained([old_student]) == []          # the first zoo's: not shown here
    new = dict(old_student, name=readme_zoo.CIARD, command=old_student["command"] + " --robust-teacher zoo:cifar10-robust-airbench94")
    other = dict(old_student, command=new["command"])
    alone = readme_zoo.block(teachers + [new])   # CIARD alone: no empty table, one sentence
    assert "No other student has landed yet" in alone and "difference vs" not in alone
    text = readme_zoo.block(teachers + [new, other])
    assert "paired 95 %" in text and f"difference vs {readme_zoo.CIARD}" in text
    assert "No student has a comparison" in text   # the first zoo's reports kept no masks
    # with per-image masks: the verdicts in words, and what they do not cover
    import numpy as np
    from ciard.stats import encode_mask
    n = old_student["evaluation"]["n"]

    def with_mask(e, name, k):
        mask = np.arange(n) < k
        return dict(e, name=name, evaluation=dict(e["evaluation"], seed=0, masks={"clean": encode_mask(mask)}))
    text = readme_zoo.block(teachers + [with_mask(new, readme_zoo.CIARD, 5000), with_mask(other, "cifar10-same", 5000),
                                        with_mask(other, "cifar10-better", 5600)])
    assert f"- clean: cifar10-same vs {readme_zoo.CIARD}: +0.0 points" in text
    assert "not measurable at this budget" in text.split("cifar10-same vs")[-1].split("\n")[0]
    assert f"cifar10-better vs {readme_zoo.CIARD}: +6.0 points" in text and "cifar10-better is higher" in text
    assert "one seed" in text and "The 2 comparisons are not adjusted for multiplicity" in text
    with pytest.raises(SystemExit, match="no <!-- retrained-zoo"):
        readme_zoo.render("no markers here", teachers)
