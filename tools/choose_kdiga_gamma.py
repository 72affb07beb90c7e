"""Choose KDIGA's input-gradient alignment weight gamma for the zoo's KDIGA student.

KDIGA's paper links no code; its first author's script (followed by ``ciard/methods/kdiga.py``)
has a default gamma of 0.5, but the values of the paper's CIFAR-10 experiments were not
available here, so gamma is not taken on trust: ``tools/train_zoo.sh kdiga-gamma``
trains a pilot ``runs/zoo/gamma-kdiga-G`` at each candidate G with KDIGA's own lr (the
``lr-newer`` step, ``checkpoints/zoo-lr-newer.json``, chosen at the script's gamma 0.5) on the
lr step's shortened budget, and this picks the G with the best validation (clean + PGD-10) / 2
on the 1,000 held-out training images, scored as ``tools/choose_lr.py`` scores its pilots.
The test set is never read. Writes the table and the choice to
``checkpoints/zoo-kdiga-gamma.json`` and prints the chosen gamma.

    python tools/choose_kdiga_gamma.py [runs/zoo]
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pilots import GAMMA_VARYING, SCRIPT, evaluation, read_pilots, script_list, unused, write_rule  # noqa: E402  (shared with choose_lr)

OUT = Path("checkpoints/zoo-kdiga-gamma.json")
PILOT = re.compile(r"gamma-kdiga-(?P<gamma>[0-9.]+)$")


def choose(root: str | Path, script: Path = SCRIPT) -> dict:
    """The pilots' table and the chosen gamma (the highest score; ties go to the smaller gamma)."""
    candidates = script_list("GAMMA_CANDIDATES", script)
    names = [f"gamma-kdiga-{g}" for g in candidates]
    scores, excluded, config = read_pilots(root, names, GAMMA_VARYING)
    runs = {g: scores[f"gamma-kdiga-{g}"] for g in candidates if f"gamma-kdiga-{g}" in scores}
    if not runs:
        raise SystemExit(f"no gamma-kdiga-* pilot finished under {root}"
                         + "".join(f"\n  {n}: {why}" for n, why in excluded.items()))
    tried = sorted(runs, key=float)
    chosen = max(tried, key=lambda g: runs[g]["score"])
    return {
        "rule": "KDIGA's gamma: the candidate whose pilot has the best validation (clean + PGD) / 2 "
                "on the held-out split (the lr rule's pilot budget and KDIGA's own lr, zoo-lr-newer.json); failed "
                "pilots (e.g. diverged) are not eligible",
        "chosen_gamma": float(chosen), "candidates": [float(g) for g in candidates], "runs": runs,
        "excluded": excluded, "ignored_directories": unused(root, PILOT, names),
        # as the lr rule: at the edge of the candidates whose pilots finished
        "chosen_at_edge": len(tried) > 1 and chosen in (tried[0], tried[-1]),
        "evaluation": evaluation(config),
        "pilot_budget": {k: config["optim"][k] for k in ("epochs", "batch_size", "lr_schedule", "lr")}
        | {"train_subset": config["data"]["train_subset"],
           "kdiga_alpha": config["method"]["kdiga_alpha"], "kdiga_temp": config["method"]["kdiga_temp"]},
    }


def main(root: str = "runs/zoo", script: str | Path = SCRIPT) -> None:
    result = choose(root, Path(script))
    write_rule(result, OUT)
    if len(result["runs"]) == 1:
        print("note: only one candidate's pilot finished: gamma was not compared", file=sys.stderr)
    if result["chosen_at_edge"]:
        print(f"note: the chosen gamma {result['chosen_gamma']:g} is at the edge of the candidates",
              file=sys.stderr)
    print(f"{'gamma':>8} {'score':>8} {'clean':>8} {'PGD':>8}", file=sys.stderr)
    for g in sorted(result["runs"], key=float):
        r = result["runs"][g]
        print(f"{g:>8} {100 * r['score']:>8.2f} {100 * r['val_clean']:>8.2f} {100 * r['val_pgd']:>8.2f}",
              file=sys.stderr)
    print(f"{result['chosen_gamma']:g}")


if __name__ == "__main__":
    main(*sys.argv[1:])
