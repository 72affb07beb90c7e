"""Does the push loss do what it is for? The Saliency page's push view, headless, on more images.

For each of two students (default: the zoo's CIARD student and its no-push ablation), PGD-10
(eps 8/255, step 2/255, seeded uniform start, as the app's push view) is crafted on the student,
and on each adversarial image x' it counts whether the clean teacher is fooled
(``argmax N(x') != y``, the push loss's mask) and whether the student then predicts the same
wrong class ("follows the fooled clean teacher", :func:`ciard.explain.follows_fooled_teacher`).
The push loss pushes a student's x' prediction away from a fooled clean teacher's, so the
student trained with it should follow less often. The two rates are compared on the same
images with a paired 95 % interval (Tango's score interval, McNemar's p: ``ciard.stats``);
a difference inside it is "not measurable at this budget".

The clean teacher is the one student A's checkpoint records (override: ``--clean-teacher``).
The comparison credits the push loss only when both checkpoints record the same training
settings but for the push weight (the check the app makes, :func:`training_differences`);
otherwise it names what differs. Models run in fp32, in eval mode, BatchNorm folded (as in the
app); the images are the class-balanced ``--n`` test images the app's push view takes
(``fixed_subset`` with its seed, 1; ``--subset-seed 0`` takes eval's, for n = 1000 the
AutoAttack images). One attack runs over the images in batches, its seeded generator carrying
on from batch to batch, so each image gets the random start it gets in the app's single call.

    python tools/push_effect.py [A B] --data-path ../shared/data/cifar10-jpeg.tar.gz [--n 1000] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ciard import checkpoints, explain, specs  # noqa: E402
from ciard.cli import _one_line  # noqa: E402  (the CLI's one-line error text)
from ciard.data import fixed_subset, load_dataset, to_float  # noqa: E402
from ciard.errors import CheckpointError, ConfigError, DataError  # noqa: E402
from ciard.fold import fold  # noqa: E402
from ciard.stats import accuracy_interval, paired_difference  # noqa: E402
from ciard.checkpoints import push_weight  # noqa: E402
from ciard.studio.metrics import is_push_ablation, training_differences  # noqa: E402
from ciard.teachers import teacher_file  # noqa: E402

EPS, STEPS, STEP_SIZE = 8 / 255, 10, 2 / 255
ALIKE = "alike but for the push loss (one trained with it, one without)"


#: the app's push view's image subset (``explain_ui.render_push``)
APP_SUBSET_SEED = 1


def _spec(name: str) -> str:
    """A bare zoo name becomes ``zoo:NAME``; paths and run directories pass through."""
    if ":" in name or "/" in name or name.endswith(".pt") or Path(name).exists():
        return name
    return f"zoo:{name}"


def _config(spec: str) -> dict:
    return checkpoints.recorded_config(checkpoints.load(specs.resolve(spec)))


def _clean_teacher(config: dict, dataset: str) -> str:
    """The clean teacher student A's config records (an ``auto`` one: the shipped default for the
    dataset it trained on)."""
    spec = config.get("model", {}).get("clean_teacher")
    if not isinstance(spec, str) or not spec:
        raise ConfigError("student A's checkpoint records no clean teacher: pass --clean-teacher")
    if spec == "auto":
        path = teacher_file("clean", "auto", str(config.get("data", {}).get("dataset") or dataset))
        if path is None:
            raise ConfigError("student A was distilled from an 'auto' clean teacher that is not shipped: "
                              "pass --clean-teacher")
        return str(path)
    return spec



def measure(student: torch.nn.Module, teacher: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
            batch: int = 250) -> dict[str, torch.Tensor]:
    """Per image: clean-correct, PGD-10-correct, fooled, follows and KL(teacher || student) on x'."""
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("clean", "pgd10", "fooled", "follows", "kl")}
    attack = explain.make_attack("pgd", EPS, STEPS, STEP_SIZE)   # one for all batches: see the docstring
    for i in range(0, len(y), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        xa = explain.run_attack(attack, student, xb, yb)
        s_adv, t_adv = explain.probabilities(student, xa), explain.probabilities(teacher, xa)
        follows, fooled = explain.follows_fooled_teacher(s_adv, t_adv, yb)
        out["clean"].append(explain.probabilities(student, xb).argmax(1) == yb)
        out["pgd10"].append(s_adv.argmax(1) == yb)
        out["fooled"].append(fooled)
        out["follows"].append(follows)
        out["kl"].append(explain.kl_per_sample(t_adv, s_adv))
    return {k: torch.cat(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("students", nargs="*", default=["cifar10-ciard-resnet20", "cifar10-nopush-resnet20"],
                    help="students A and B: zoo names, checkpoint files or run directories")
    ap.add_argument("--dataset", default="cifar10-archive")
    ap.add_argument("--data-path", default=None, help="the CIFAR-10 JPEG archive (cifar10-archive)")
    ap.add_argument("--n", type=int, default=1000, help="class-balanced test images (0: all)")
    ap.add_argument("--subset-seed", type=int, default=APP_SUBSET_SEED,
                    help=f"which class-balanced images (default {APP_SUBSET_SEED}: the app's; 0: eval's)")
    ap.add_argument("--clean-teacher", default=None, help="default: the one student A records")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if len(args.students) != 2:
        ap.error("give two students (A and B) or none")
    if args.n < 0:
        ap.error("--n must be 0 (all) or a positive number of images")
    t0 = time.perf_counter()
    torch.manual_seed(0)
    try:
        names = [_spec(s) for s in args.students]
        configs = [_config(s) for s in names]
        teacher_spec = args.clean_teacher or _clean_teacher(configs[0], args.dataset)
        teacher = fold(specs.load_model(teacher_spec, "cpu").float().eval())
        models = [fold(specs.load_model(s, "cpu").float().eval()) for s in names]
        data = load_dataset(args.dataset, args.data_path, seed=0)
        for what, m in (("the clean teacher", teacher), *zip(names, models)):
            if m.num_classes != data.num_classes:
                raise ConfigError(f"{what} predicts {m.num_classes} classes, {args.dataset} has {data.num_classes}")
    except (CheckpointError, ConfigError, DataError, OSError) as exc:
        print(f"push_effect: {_one_line(exc)}", file=sys.stderr)
        return 2
    test = (data.test if args.n == 0 or args.n >= len(data.test)
            else fixed_subset(data.test, args.n, seed=args.subset_seed))
    x, y = to_float(test.x), test.y
    per = [measure(m, teacher, x, y) for m in models]
    push = [push_weight(c) for c in configs]
    differs = training_differences(configs[0], configs[1], also_ignored=("method.push_weight",))
    if not all(configs):
        likeness = "unknown: a checkpoint records no training config"
    elif differs:
        likeness = "mixed: " + "; ".join(f"{k} {a} vs {b}" for k, (a, b) in differs.items())
    elif is_push_ablation(push):
        likeness = ALIKE
    else:
        likeness = "same settings, push weights " + " vs ".join("–" if w is None else f"{w:g}" for w in push)
    report = {"students": names, "push_weight": push, "clean_teacher": teacher_spec, "n": len(y), "subset_seed": args.subset_seed,
              "attack": f"PGD-{STEPS}, eps 8/255, step 2/255, on each student", "likeness": likeness,
              "per_student": [], "paired": {}}
    for name, r in zip(names, per):
        k = int(r["follows"].sum())
        low, high = accuracy_interval(k, len(y))
        fooled = r["fooled"]
        report["per_student"].append({
            "name": name, "follows": k / len(y), "follows_ci": [low, high], "fooled": int(fooled.sum()),
            "follows_of_fooled": k / max(1, int(fooled.sum())),
            "kl_on_fooled_mean": float(r["kl"][fooled].mean()) if fooled.any() else None,
            "clean": float(r["clean"].float().mean()), "pgd10": float(r["pgd10"].float().mean())})
    paired = {key: paired_difference(per[0][key].numpy(), per[1][key].numpy()) for key in ("follows", "clean", "pgd10")}
    report["paired"] = {key: d.as_dict() for key, d in paired.items()}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{len(y)} test images (subset seed {args.subset_seed}); PGD-{STEPS} (8/255) crafted on each student; clean teacher {teacher_spec}")
    print(f"A and B: {likeness}")
    for label, s, w in zip("AB", report["per_student"], push):
        lo, hi = s["follows_ci"]
        kl = "–" if s["kl_on_fooled_mean"] is None else f"{s['kl_on_fooled_mean']:.3f}"
        print(f"  {label} {s['name']} (push weight {'–' if w is None else f'{w:g}'}): follows the fooled clean "
              f"teacher on {100 * s['follows']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] of images "
              f"({100 * s['follows_of_fooled']:.1f} % of the {s['fooled']} where it is fooled); mean KL there "
              f"{kl}; clean {100 * s['clean']:.1f} %, PGD-10 {100 * s['pgd10']:.1f} %")
    for key, what in (("follows", "follows the fooled clean teacher"), ("clean", "clean accuracy"),
                      ("pgd10", "PGD-10 accuracy")):
        print(f"  {what}: {paired[key].verdict('A', 'B')}")
    if likeness != ALIKE:
        print("  so a difference above is not the push loss's effect alone")
    print(f"({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
