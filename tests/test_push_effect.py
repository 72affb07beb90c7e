"""The push view's measure (ciard.explain.follows_fooled_teacher) and tools/push_effect.py,
which runs it headless on more images with paired statistics."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ciard import explain

ROOT = Path(__file__).resolve().parents[1]


def test_follows_means_the_same_wrong_class_as_a_fooled_teacher():
    y = torch.tensor([0, 0, 1, 1, 2])
    #                    right  fooled->1  fooled->0  right  fooled->0
    teacher = torch.eye(3)[[0, 1, 0, 1, 0]]
    student = torch.eye(3)[[0, 1, 2, 1, 1]]
    follows, fooled = explain.follows_fooled_teacher(student, teacher, y)
    assert fooled.tolist() == [False, True, True, False, True]      # argmax N(x') != y, nothing else
    # the student agrees with the teacher on image 0 and 3 too, but there the teacher is right
    assert follows.tolist() == [False, True, False, False, False]
    # the app passes numpy probabilities: the same answer
    f_np, m_np = explain.follows_fooled_teacher(student.numpy(), teacher.numpy(), y.numpy())
    assert isinstance(f_np, np.ndarray) and f_np.tolist() == follows.tolist() and m_np.tolist() == fooled.tolist()


def _run(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "push_effect.py"), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def _copy(tmp_path, name, **changes):
    """The zoo's CIARD student with its recorded config changed (weights untouched)."""
    from ciard import checkpoints, zoo
    ck = checkpoints.load(zoo.ZOO_DIR / "cifar10-ciard-resnet20.pt")
    for key, value in changes.items():
        section, field = key.split(".")
        ck["config"][section][field] = value
    ck.pop("format")
    return str(checkpoints.save(ck, tmp_path / f"{name}.pt"))


def test_the_tool_compares_two_students_on_the_same_images(tmp_path):
    """The same weights twice, recorded as a like-for-like no-push ablation: identical per-image
    results (the attack is seeded), so a zero paired difference, and the pair called alike."""
    b = _copy(tmp_path, "nopush", **{"method.push_weight": 0.0})
    run = _run("cifar10-ciard-resnet20", b, "--dataset", "default", "--n", "30", "--json")
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout)
    assert r["n"] == 30 and r["clean_teacher"] == "zoo:cifar10-clean-resnet20"
    assert r["likeness"] == "alike but for the push weight" and r["push_weight"] == [1.0, 0.0]
    a, b = r["per_student"]
    for s in (a, b):
        assert 0 <= s["follows"] <= s["fooled"] / 30 and s["follows_ci"][0] <= s["follows"] <= s["follows_ci"][1]
    assert a["follows"] > 0, "at 8/255 the clean teacher is fooled and followed on some of 30 images"
    for key in ("follows", "clean", "robust"):
        d = r["paired"][key]
        assert d["only_a"] == d["only_b"] == 0 and d["diff"] == 0 and not d["significant"]


def test_the_tool_names_what_else_differs(tmp_path):
    b = _copy(tmp_path, "other", **{"optim.epochs": 99, "method.push_weight": 0.0})
    run = _run("cifar10-ciard-resnet20", b, "--dataset", "default", "--n", "10")
    assert run.returncode == 0, run.stderr
    assert "A and B: mixed: optim.epochs 6 vs 99" in run.stdout
    assert "not the push loss's effect alone" in run.stdout


def test_the_tool_refuses_a_bad_student_in_one_line():
    run = _run("cifar10-ciard-resnet20", "zoo:no-such-student", "--dataset", "default", "--n", "10")
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0
    assert "no zoo entry named 'no-such-student'" in run.stderr
