"""Training dynamics of the zoo's student runs (runs/zoo/*): what the push loss, the
temperatures and ITT did, from each run's metrics.jsonl (validation split only).

    python tools/zoo_dynamics.py [runs/zoo]
"""
import json
import statistics
import sys
from pathlib import Path


def main(root: str = "runs/zoo") -> None:
    print(f"{'run':<18} {'val clean':>9} {'val PGD':>8} {'best ep':>7} {'push term/KD':>12} "
          f"{'scale':>7} {'fooled':>7} {'tau_adv':>8} {'tau_nat':>8} {'R PGD first->last':>18}")
    for run in sorted(Path(root).iterdir()):
        f = run / "metrics.jsonl"
        if not f.is_file():
            continue
        recs = [json.loads(line) for line in f.read_text().splitlines()]
        steps = [r for r in recs if r["kind"] == "step"]
        epochs = [r for r in recs if r["kind"] == "epoch"]
        if not epochs or not steps:
            continue
        best = max(epochs, key=lambda e: e.get("score", float("-inf")))
        ratio = scale = fooled = float("nan")
        cfg = json.loads((run / "config.json").read_text())
        if "loss_push" in steps[0] and cfg["method"]["method"] == "ciard":   # MTARD logs it, unused
            lam = cfg["method"]["push_weight"]
            terms = [lam * r["push_scale"] * r["loss_push"] / max(r["loss_adv"] + r["loss_nat"], 1e-12) for r in steps]
            ratio = statistics.mean(terms)
            scale = statistics.median(r["push_scale"] for r in steps)
            fooled = statistics.mean(r["push_fraction"] for r in steps)
        tau_a = steps[-1].get("tau_adv", float("nan"))
        tau_n = steps[-1].get("tau_nat", float("nan"))
        r_pgd = [e.get("robust_teacher_pgd") for e in epochs if e.get("robust_teacher_pgd") is not None]
        r_txt = f"{100 * r_pgd[0]:.1f} -> {100 * r_pgd[-1]:.1f}" if r_pgd else "-"
        print(f"{run.name:<18} {100 * best['student_clean']:>9.1f} {100 * best['student_pgd']:>8.1f} "
              f"{best['epoch']:>7} {ratio:>12.3f} {scale:>7.3g} {fooled:>7.2f} {tau_a:>8.3f} {tau_n:>8.3f} {r_txt:>18}")


if __name__ == "__main__":
    main(*sys.argv[1:])
