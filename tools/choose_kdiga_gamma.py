"""Choose KDIGA's input-gradient alignment weight gamma for the zoo's KDIGA student.

KDIGA's paper links no code; its first author's script (followed by ``ciard/methods/kdiga.py``)
has a default gamma of 0.5, but the values of the paper's CIFAR-10 experiments were not
available here, so gamma is not taken on trust: ``tools/train_zoo.sh kdiga-gamma``
trains a pilot ``runs/zoo/gamma-kdiga-G`` at each candidate G with the zoo's student lr on the
lr step's shortened budget, and this picks the G with the best validation (clean + PGD-10) / 2
on the 1,000 held-out training images, scored as ``tools/choose_lr.py`` scores its pilots.
The test set is never read. Writes the table and the choice to
``checkpoints/zoo-kdiga-gamma.json`` and prints the chosen gamma.

    python tools/choose_kdiga_gamma.py [runs/zoo]
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from choose_lr import finished_pilots  # noqa: E402  (the lr chooser's reading and score, kept in one place)

OUT = Path("checkpoints/zoo-kdiga-gamma.json")
PILOT = re.compile(r"gamma-kdiga-(?P<gamma>[0-9.]+)$")


def choose(root: str | Path) -> dict:
    """The pilots' table and the chosen gamma (the highest score; ties go to the smaller gamma)."""
    runs = {m["gamma"]: score for m, score in finished_pilots(root, PILOT)}
    if not runs:
        raise SystemExit(f"no finished gamma-kdiga-* pilot under {root}")
    chosen = max(sorted(runs, key=float), key=lambda g: runs[g]["score"])
    config = json.loads((Path(root) / f"gamma-kdiga-{chosen}" / "config.json").read_text())
    return {
        "rule": "KDIGA's gamma: the candidate whose pilot has the best validation (clean + PGD-10) / 2 "
                "on the held-out split (the lr rule's pilot budget and the zoo's student lr)",
        "chosen_gamma": float(chosen), "runs": runs,
        "pilot_budget": {k: config["optim"][k] for k in ("epochs", "batch_size", "lr_schedule", "lr")}
        | {"train_subset": config["data"]["train_subset"],
           "kdiga_alpha": config["method"]["kdiga_alpha"], "kdiga_temp": config["method"]["kdiga_temp"]},
    }


def main(root: str = "runs/zoo") -> None:
    result = choose(root)
    OUT.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"{'gamma':>8} {'score':>8} {'clean':>8} {'PGD-10':>8}", file=sys.stderr)
    for g in sorted(result["runs"], key=float):
        r = result["runs"][g]
        print(f"{g:>8} {100 * r['score']:>8.2f} {100 * r['val_clean']:>8.2f} {100 * r['val_pgd10']:>8.2f}",
              file=sys.stderr)
    print(f"{result['chosen_gamma']:g}")


if __name__ == "__main__":
    main(*sys.argv[1:])
