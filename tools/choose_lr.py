"""Choose the one student learning rate every distillation method of the zoo uses.

Reads the pilot runs ``runs/zoo/lr-METHOD-LR`` (made by ``tools/train_zoo.sh lr``: each method
at each candidate lr, a shortened zoo budget, selection data only), scores each run by its
best validation (clean + PGD-10) / 2 on the 1,000 held-out training images, averages the
score over the methods for every lr, and picks the lr with the highest mean. The test set is
never read. Writes the table and the choice to ``checkpoints/zoo-lr-rule.json`` (the evidence
the README cites) and prints the chosen lr.

    python tools/choose_lr.py [runs/zoo]
"""
from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

OUT = Path("checkpoints/zoo-lr-rule.json")
PILOT = re.compile(r"lr-(?P<method>[a-z_]+)-(?P<lr>[0-9.]+)$")


def best_score(run: Path) -> dict | None:
    f = run / "metrics.jsonl"
    if not f.is_file():
        return None
    epochs = [r for r in map(json.loads, f.read_text().splitlines()) if r.get("kind") == "epoch"]
    if not epochs:
        return None
    best = max(epochs, key=lambda e: e["score"])
    return {"score": best["score"], "val_clean": best["student_clean"], "val_pgd10": best["student_pgd"],
            "epoch": best["epoch"]}


def finished_pilots(root: str | Path, pattern: re.Pattern) -> list[tuple[re.Match, dict]]:
    """(name match, best_score) of every finished run under ``root`` whose name matches
    ``pattern``; pilots that failed (e.g. diverged) or did not end are left out."""
    found = []
    for run in sorted(Path(root).iterdir()):
        m = pattern.match(run.name)
        status = run / "status.json"
        if not m or not status.is_file() or json.loads(status.read_text()).get("state") != "finished":
            continue
        score = best_score(run)
        if score:
            found.append((m, score))
    return found


def main(root: str = "runs/zoo") -> None:
    table: dict[str, dict[str, dict]] = {}
    for m, score in finished_pilots(root, PILOT):
        table.setdefault(m["lr"], {})[m["method"]] = score
    methods = sorted({meth for row in table.values() for meth in row})
    complete = {lr: row for lr, row in table.items() if set(row) == set(methods)}
    if not complete:
        sys.exit("no learning rate has a finished pilot for every method")
    means = {lr: statistics.mean(row[m]["score"] for m in methods) for lr, row in complete.items()}
    tried = sorted(complete, key=float)
    chosen = max(tried, key=means.get)   # ties go to the smaller lr
    # what each method alone would have chosen, and whether the choice sits at the edge of the
    # candidates (then a larger or smaller lr might have scored higher: said, not hidden)
    by_method = {m: max(tried, key=lambda lr, m=m: complete[lr][m]["score"]) for m in methods}
    edge = chosen in (tried[0], tried[-1]) and len(tried) > 1
    if edge:
        print(f"note: the chosen lr {chosen} is the {'smallest' if chosen == tried[0] else 'largest'} "
              "candidate with a complete set of pilots", file=sys.stderr)
    config = json.loads(next(Path(root).glob(f"lr-{methods[0]}-{chosen}/config.json")).read_text())
    OUT.write_text(json.dumps({
        "rule": "one student lr for every distillation method: the candidate with the highest mean, over "
                "the methods, of the best validation (clean + PGD-10) / 2 on the held-out split",
        "chosen_lr": float(chosen), "methods": methods, "mean_score": {lr: round(v, 4) for lr, v in means.items()},
        "best_lr_by_method": {m: float(lr) for m, lr in by_method.items()}, "chosen_at_edge": edge,
        "runs": table, "pilot_budget": {k: config["optim"][k] for k in ("epochs", "batch_size", "lr_schedule")}
        | {"train_subset": config["data"]["train_subset"], "pgd_steps": config["attack"]["pgd_steps"]},
    }, indent=2, sort_keys=True) + "\n")
    print(f"{'lr':>6} " + " ".join(f"{m:>8}" for m in methods) + f" {'mean':>8}", file=sys.stderr)
    for lr in tried:
        print(f"{lr:>6} " + " ".join(f"{100 * complete[lr][m]['score']:>8.2f}" for m in methods)
              + f" {100 * means[lr]:>8.2f}", file=sys.stderr)
    print(chosen)


if __name__ == "__main__":
    main(*sys.argv[1:])
