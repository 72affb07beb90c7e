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
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    # teacher on x':   right  ->1   ->0   right  ->0   right  ->2
    teacher = torch.eye(3)[[0, 1, 0, 1, 0, 2, 2]]
    # student on x':   right  ->1   ->2   right  ->1   ->0    right
    student = torch.eye(3)[[0, 1, 2, 1, 1, 0, 0]]
    follows, fooled = explain.follows_fooled_teacher(student, teacher, y)
    # argmax N(x') != y: the teacher's mistakes, not the student's (image 5: only the student is
    # wrong; image 6: only the teacher)
    assert fooled.tolist() == [False, True, True, False, True, False, True]
    # the same wrong class as a fooled teacher: not merely both wrong (2, 4), not agreeing where
    # the teacher is right (0, 3)
    assert follows.tolist() == [False, True, False, False, False, False, False]
    # the app passes numpy probabilities: the same answer
    f_np, m_np = explain.follows_fooled_teacher(student.numpy(), teacher.numpy(), y.numpy())
    assert isinstance(f_np, np.ndarray) and f_np.tolist() == follows.tolist() and m_np.tolist() == fooled.tolist()


def test_the_tool_measures_what_the_app_measures():
    """push_effect.measure, in batches, against the app's path (explain_ui.render_push via probe:
    one seeded PGD-10 over all images on the folded model, numpy probabilities), image by image."""
    sys.path.insert(0, str(ROOT / "tools"))
    import push_effect
    from ciard import specs
    from ciard.data import fixed_subset, load_dataset, to_float
    from ciard.fold import fold
    student = fold(specs.load_model("zoo:cifar10-ciard-resnet20").float().eval())
    teacher = fold(specs.load_model("zoo:cifar10-clean-resnet20").float().eval())
    sub = fixed_subset(load_dataset("default").test, 24, seed=push_effect.APP_SUBSET_SEED)
    x, y = to_float(sub.x), sub.y
    got = push_effect.measure(student, teacher, x, y, batch=7)
    atk = explain.make_attack("pgd", 8 / 255, 10, 2 / 255)
    xa = explain.run_attack(atk, student, x, y)
    s_adv, t_adv = explain.probabilities(student, xa).numpy(), explain.probabilities(teacher, xa).numpy()
    follows, fooled = explain.follows_fooled_teacher(s_adv, t_adv, y.numpy())
    assert got["fooled"].tolist() == fooled.tolist() and got["follows"].tolist() == follows.tolist()
    assert got["pgd10"].tolist() == (s_adv.argmax(1) == y.numpy()).tolist()
    assert got["fooled"].any() and not torch.equal(got["fooled"], ~got["pgd10"]), \
        "the teacher's mistakes must differ from the student's somewhere for this to test anything"


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
    assert r["likeness"] == push_effect_alike() and r["push_weight"] == [1.0, 0.0]
    a, b = r["per_student"]
    for s in (a, b):
        assert 0 <= s["follows"] <= s["fooled"] / 30 and s["follows_ci"][0] <= s["follows"] <= s["follows_ci"][1]
    assert a["follows"] > 0, "at 8/255 the clean teacher is fooled and followed on some of 30 images"
    for key in ("follows", "clean", "pgd10"):
        d = r["paired"][key]
        assert d["only_a"] == d["only_b"] == 0 and d["diff"] == 0 and not d["significant"]


def test_the_tool_names_what_else_differs(tmp_path):
    b = _copy(tmp_path, "other", **{"optim.epochs": 99, "method.push_weight": 0.0})
    run = _run("cifar10-ciard-resnet20", b, "--dataset", "default", "--n", "10")
    assert run.returncode == 0, run.stderr
    assert "A and B: mixed: optim.epochs 6 vs 99" in run.stdout
    assert "not the push loss's effect alone" in run.stdout


def push_effect_alike():
    sys.path.insert(0, str(ROOT / "tools"))
    import push_effect
    return push_effect.ALIKE


def test_the_tool_does_not_call_equal_push_weights_an_ablation(tmp_path):
    b = _copy(tmp_path, "same", **{"method.push_weight": 2.0})
    run = _run("cifar10-ciard-resnet20", b, "--dataset", "default", "--n", "10")
    assert run.returncode == 0, run.stderr
    assert "A and B: same settings, push weights 1 vs 2" in run.stdout
    assert "not the push loss's effect alone" in run.stdout


def test_the_tool_refuses_a_missing_dataset_in_one_line(tmp_path):
    run = _run("cifar10-ciard-resnet20", "cifar10-noitt-resnet20", "--dataset", "cifar10-archive",
               "--data-path", str(tmp_path / "nowhere.tar.gz"))
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0 and "nowhere.tar.gz" in run.stderr


def test_the_tool_refuses_a_bad_student_in_one_line():
    run = _run("cifar10-ciard-resnet20", "zoo:no-such-student", "--dataset", "default", "--n", "10")
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0
    assert "no zoo entry named 'no-such-student'" in run.stderr


def test_the_view_splits_the_rate_into_fooling_and_following():
    from ciard.studio.explain_ui import where_from
    text = where_from(85, 87, 52, 57)
    assert "on 85 images and by B's on 87" in text and "A follows it on 61.2 %" in text and "B on 65.5 %" in text
    assert "B on –" in where_from(3, 0, 1, 0)
