"""Reading the zoo's pilot runs for the hyperparameter rules (``choose_lr.py``,
``choose_kdiga_gamma.py``): which pilots were meant to run, how each ended, and its score.

The candidates are the ones ``tools/train_zoo.sh`` trains pilots at (its ``LR_CANDIDATES``,
``LR_METHODS`` and ``GAMMA_CANDIDATES`` lines), not whatever directories happen to exist, so a
stray or stale pilot (another candidate list, another loss) never enters a choice. Each
expected pilot is either scored (finished), excluded with the reason it failed (e.g. it
diverged: a rule is still chosen from the others, and the reason is written down), or, if it
is missing, did not end or crashed, the choice is refused. Every scored pilot must have the same budget
and evaluation as the others (apart from the value being chosen) and be scored on a held-out
split (``eval_size`` > 0), never on the test set.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the repository, for ciard
from ciard.zoo import NOT_RECORDED, machine_seconds, machines_text  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "train_zoo.sh"
#: config keys that may differ between any two pilots of a rule: the run's own name and how it
#: was run (a resume may change the device, threads and progress display), not what it trained
RUN_ONLY = {("run", k) for k in ("name", "out_dir", "device", "threads", "progress", "log", "log_every",
                                 "checkpoint_every")}
#: and, for each rule, what its pilots vary on purpose
LR_VARYING = {("optim", "lr"), ("method", "method")}
GAMMA_VARYING = {("method", "kdiga_gamma")}


def script_list(name: str, script: Path = SCRIPT) -> list[str]:
    """The words of ``NAME="a b c"`` in tools/train_zoo.sh."""
    m = re.search(rf'^{name}="([^"]*)"', Path(script).read_text(), re.M)
    if not m or not m.group(1).split():
        raise SystemExit(f"{name} is not set in {script}")
    return m.group(1).split()


def best_score(run: Path) -> dict | None:
    """The pilot's best validation epoch: (clean + PGD) / 2 and its parts, or None."""
    f = run / "metrics.jsonl"
    if not f.is_file():
        return None
    epochs = [r for r in map(json.loads, f.read_text().splitlines()) if r.get("kind") == "epoch"]
    if not epochs:
        return None
    best = max(epochs, key=lambda e: e["score"])
    return {"score": best["score"], "val_clean": best["student_clean"], "val_pgd": best["student_pgd"],
            "epoch": best["epoch"]}


def _budget(config: dict, varying: set) -> dict:
    return {(section, key): value for section, fields in config.items() if isinstance(fields, dict)
            for key, value in fields.items() if (section, key) not in varying | RUN_ONLY}


def read_pilots(root: str | Path, names: list[str], varying: set) -> tuple[dict[str, dict], dict[str, str], dict]:
    """(scores of the finished pilots, {name: why excluded} of the diverged ones, the shared config
    of the scored pilots) for the expected pilot ``names`` under ``root``; ``varying``: the config
    keys, (section, key), the pilots may differ in (the value the rule chooses).

    Raises SystemExit when a pilot is missing, has not ended or failed otherwise than by
    diverging (the step that trains them treats a crash as its own failure), when the scored
    pilots' budgets or evaluations differ, or when they were scored without a held-out split.
    """
    root = Path(root)
    scores: dict[str, dict] = {}
    excluded: dict[str, str] = {}
    configs: dict[str, dict] = {}
    for name in names:
        status = root / name / "status.json"
        if not status.is_file():
            raise SystemExit(f"pilot {name} has not run (no {status}): run its step first")
        info = json.loads(status.read_text())
        state = info.get("state")
        if state == "failed":
            error = info.get("error") or "failed, no reason recorded"
            if "diverged" not in error:
                raise SystemExit(f"pilot {name} failed: {error}")
            excluded[name] = error
            continue
        if state != "finished":
            raise SystemExit(f"pilot {name} has not finished (state '{state}'): run its step again")
        score = best_score(root / name)
        if score is None:
            raise SystemExit(f"pilot {name} finished without a validation record")
        # where it trained (train_zoo.sh logs each session's machine): pilots on CPUs of different
        # kinds ran at different ``auto`` precisions, which the rule's evidence should show
        log = root / name / "train-seconds"
        text = log.read_text() if log.is_file() else ""
        try:
            per = machine_seconds(text)
        except ValueError as exc:
            raise SystemExit(f"pilot {name}: {log}: {exc}") from None
        score["trained_on"], score["machines"] = machines_text(per), sorted(per) or [NOT_RECORDED]
        scores[name] = score
        configs[name] = json.loads((root / name / "config.json").read_text())
    if not scores:
        return scores, excluded, {}
    first, config = next(iter(configs.items()))
    run = config.get("run", {})
    if not run.get("eval_size"):
        raise SystemExit(f"pilot {first} has no held-out split (eval_size {run.get('eval_size')}): "
                         "its epoch scores would be on the test set")
    reference = _budget(config, varying)
    for name, other in configs.items():
        theirs = _budget(other, varying)
        diff = sorted(k for k in reference.keys() | theirs.keys() if reference.get(k) != theirs.get(k))
        if diff:
            section, key = diff[0]
            raise SystemExit(f"pilots {first} and {name} differ in {section}.{key} "
                             f"({reference.get(diff[0])!r} vs {theirs.get(diff[0])!r}): not the same budget")
    return scores, excluded, config


def unused(root: str | Path, pattern: re.Pattern, names: list[str]) -> list[str]:
    """Directories that look like pilots of this rule but are not among its candidates."""
    root = Path(root)
    return sorted(d.name for d in root.iterdir() if pattern.match(d.name) and d.name not in names) \
        if root.is_dir() else []


def evaluation(config: dict) -> dict:
    """How the pilots were scored (written beside each choice)."""
    run = config["run"]
    return {"split": f"{run['eval_size']} images held out of the training set",
            "eval_size": run["eval_size"], "eval_pgd_steps": run["eval_pgd_steps"], "seed": run["seed"],
            "score": f"best epoch's (clean + PGD-{run['eval_pgd_steps']}) / 2"}


def machines(runs: dict) -> list[str]:
    """Every machine the scored pilots in a rule's ``runs`` table trained on (the table may be
    nested, lr -> method -> score)."""
    found: set[str] = set()
    for value in runs.values():
        if isinstance(value, dict) and "machines" in value:
            found.update(value["machines"])
        elif isinstance(value, dict):
            found.update(machines(value))
    return sorted(found)


def write_rule(result: dict, out: Path) -> None:
    """Write a rule's JSON and say, on stderr, which pilots it left out or ignored, and whether
    they trained on different machines."""
    result["trained_on"] = machines(result["runs"])
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    known = [m for m in result["trained_on"] if m != NOT_RECORDED]
    if len(known) > 1:
        print("note: the pilots trained on different machines (their 'auto' precision may differ): "
              + " | ".join(known), file=sys.stderr)
    for name, why in result["excluded"].items():
        print(f"note: {name} left out: {why}", file=sys.stderr)
    if result["ignored_directories"]:
        print(f"note: not candidates, ignored: {', '.join(result['ignored_directories'])}", file=sys.stderr)
