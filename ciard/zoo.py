"""The shipped model zoo: ``checkpoints/*.pt`` described by ``checkpoints/manifest.json``.

Each entry records what a user needs to trust and reproduce it: name, file, role
(clean_teacher / robust_teacher / student), method, architecture, dataset, the command that
trained it, training time and hardware, sha256, and its evaluation, each figure with the
command that measured it. ``python -m ciard zoo`` lists it; ``zoo add`` registers a model
(copies the weights-only checkpoint, hashes it, evaluates it, writes the entry).

The manifest is read and written here and nowhere else: other modules ask :func:`entries`,
:func:`entry_path` and :func:`default_teacher`.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from . import checkpoints
from .resources import MANIFEST, ZOO_DIR
from .runlog import write_atomic
from .runtime import cpu_has_fast_bf16, device_name
from .stats import decode_mask, paired_difference


def read_manifest() -> dict[str, Any]:
    if not MANIFEST.is_file():
        return {"format": 1, "entries": []}
    return json.loads(MANIFEST.read_text())


def write_manifest(manifest: dict[str, Any]) -> None:
    ZOO_DIR.mkdir(parents=True, exist_ok=True)
    write_atomic(MANIFEST, json.dumps(manifest, indent=2) + "\n")


def entries() -> list[dict[str, Any]]:
    """The manifest's entries ([] where there is no manifest)."""
    return read_manifest().get("entries", [])


def entry_path(name: str) -> Path | None:
    """The checkpoint file of the entry called ``name``, or None if there is no such entry."""
    for entry in entries():
        if entry.get("name") == name:
            return ZOO_DIR / entry["file"]
    return None


#: which zoo datasets serve a --dataset, best first: the embedded subset is drawn from
#: CIFAR-10's own train/test splits, so full CIFAR-10 teachers serve it too
ZOO_DATASETS = {"default": ("cifar10", "default"), "cifar10": ("cifar10",),
                "cifar10-archive": ("cifar10",)}


def default_teacher(role: str, dataset: str = "cifar10") -> Path | None:
    """The shipped teacher for a role ("clean_teacher" / "robust_teacher"), if any."""
    listed = entries()
    for ds in ZOO_DATASETS.get(dataset, (dataset,)):
        for entry in listed:
            if entry.get("role") == role and entry.get("default") and entry.get("dataset") == ds:
                path = ZOO_DIR / entry["file"]
                if path.is_file():
                    return path
    return None


def set_default(name: str) -> dict[str, Any]:
    """Make teacher ``name`` the one ``auto`` picks for its role and dataset (the others of that
    role and dataset stop being default)."""
    manifest = read_manifest()
    entry = next((e for e in manifest["entries"] if e["name"] == name), None)
    if entry is None:
        raise KeyError(f"no zoo entry named '{name}'")
    if entry["role"] not in ("clean_teacher", "robust_teacher"):
        raise ValueError(f"'{name}' is a {entry['role']}: only teachers have a default ('auto')")
    for e in manifest["entries"]:
        if e["role"] == entry["role"] and e.get("dataset") == entry.get("dataset"):
            e["default"] = e["name"] == name
    write_manifest(manifest)
    return entry


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    kind = "AVX-512 BF16/AMX" if cpu_has_fast_bf16() else "fp32 only (no AVX-512 BF16)"
    return f"CPU: {device_name(torch.device('cpu'))}, {platform.machine()}, {kind}"


#: what a training log says of a session logged before machines were recorded
NOT_RECORDED = "machine not recorded"


def machine_seconds(text: str) -> dict[str, float]:
    """{machine: seconds} from a run's training log: one line per training session, its seconds
    and then the machine it ran on as :func:`hardware` words it (a chain of sessions may cross
    machines, e.g. fp32-only and bf16 CPUs, whose ``auto`` precision differs). Lines with the
    seconds only (logs written before machines were recorded) count under :data:`NOT_RECORDED`.
    """
    per: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        secs, _, machine = line.strip().partition(" ")
        try:
            seconds = float(secs)
        except ValueError:
            raise ValueError(f"training log line '{line.strip()}' does not start with seconds") from None
        key = machine.strip() or NOT_RECORDED
        per[key] = per.get(key, 0.0) + seconds
    return per


def machines_text(per: dict[str, float]) -> str:
    """Where a run's sessions were spent, from :func:`machine_seconds`: one machine, its
    description; several, each with its seconds, most first."""
    if len(per) <= 1:
        return next(iter(per), NOT_RECORDED)
    return "; ".join(f"{m}: {s:.0f} s" for m, s in sorted(per.items(), key=lambda kv: -kv[1]))


def training_sessions(text: str) -> tuple[float, str]:
    """(total seconds, :func:`machines_text`) from a run's training log (:func:`machine_seconds`)."""
    per = machine_seconds(text)
    return sum(per.values()), machines_text(per)


def add_entry(*, name: str, source: str, role: str, dataset: str, command: str,
              train_seconds: float | None, default: bool, evaluation: dict[str, Any] | None,
              eval_command: str | None, notes: str = "", trained_on: str | None = None) -> dict[str, Any]:
    """Copy a checkpoint into the zoo (model-only) and record it in the manifest.

    ``trained_on``: the machine(s) it trained on (:func:`training_sessions`); default: this one.
    """
    ck = checkpoints.load(source)
    model = checkpoints.model_from(ck, source)
    dest = ZOO_DIR / f"{name}.pt"
    checkpoints.save_model(model, dest, config=ck.get("config"), metrics=ck.get("metrics"))
    cfg = checkpoints.recorded_config(ck)
    entry = {
        "name": name, "file": dest.name, "role": role, "default": default,
        "method": cfg.get("method", {}).get("method"), "arch": model.arch,
        # CIARD's push weight, from the checkpoint's own config: the push view finds its ablation by it
        "push_weight": checkpoints.push_weight(cfg),
        "num_classes": model.num_classes, "dataset": dataset, "command": command,
        "train_seconds": train_seconds, "hardware": trained_on or hardware(), "sha256": checkpoints.sha256(dest),
        "size_bytes": dest.stat().st_size, "added": time.strftime("%Y-%m-%d"),
        "evaluation": evaluation or {}, "eval_command": eval_command, "notes": notes,
    }
    manifest = read_manifest()
    entries = manifest["entries"]
    if any(e["name"] == name for e in entries):   # retrained: same place (the first student is the default)
        manifest["entries"] = [entry if e["name"] == name else e for e in entries]
    else:
        manifest["entries"] = entries + [entry]
    write_manifest(manifest)
    return entry


def evaluation_from_report(report: dict[str, Any]) -> dict[str, Any]:
    """The manifest's form of one ``python -m ciard eval --json`` report."""
    keep = ("accuracy", "n", "seed", "images", "eps", "dataset", "precision", "source", "warnings")
    out = {k: report[k] for k in keep if k in report} | {
        "attacks": {k: v["attack"] for k, v in report["results"].items()}}
    masks = {k: v["mask"] for k, v in report["results"].items() if "mask" in v}
    return out | ({"masks": masks} if masks else {})


def merge_evaluation(name: str, report: dict[str, Any], command: str) -> dict[str, Any]:
    """Add a further evaluation (e.g. AutoAttack on 1,000 images) to an entry.

    The entry's ``evaluation`` keeps the figures of its first (full test set) report; the new
    report's attacks that are not there yet join ``accuracy`` with their own ``n`` recorded in
    ``n_by_attack``. Each extra report is kept whole in ``extra`` with its command, so figures
    measured on different subsets are never silently mixed.
    """
    manifest = read_manifest()
    entry = next((e for e in manifest["entries"] if e["name"] == name), None)
    if entry is None:
        raise KeyError(f"no zoo entry named '{name}'")
    ev = entry.setdefault("evaluation", {})
    extra = evaluation_from_report(report) | {"command": command}
    ev["extra"] = [x for x in ev.get("extra", []) if x.get("command") != command] + [extra]
    n_by = ev.setdefault("n_by_attack", {k: ev.get("n") for k in ev.get("accuracy", {})})
    for key, acc in extra["accuracy"].items():
        if key not in ev.setdefault("accuracy", {}) or n_by.get(key) == extra["n"]:
            ev["accuracy"][key], n_by[key] = acc, extra["n"]
            ev.setdefault("attacks", {})[key] = extra["attacks"][key]
    ev["warnings"] = sorted(set(ev.get("warnings", [])) | {f"(n={extra['n']}) {w}" for w in extra["warnings"]})
    write_manifest(manifest)
    return entry


def format_zoo(entries: list[dict[str, Any]]) -> str:
    keys = ["clean", "fgsm", "pgd_sat", "pgd_trades", "cw", "autoattack"]
    head = f"{'name':<24} {'role':<15} {'arch':<12} {'method':<8} {'dataset':<16} " + \
        " ".join(f"{k:>10}" for k in keys) + "  n"
    rows = [head]
    for e in entries:
        acc = e.get("evaluation", {}).get("accuracy", {})
        cells = " ".join(f"{100 * acc[k]:>9.2f}%" if k in acc else f"{'-':>10}" for k in keys)
        rows.append(f"{e['name']:<24} {e['role']:<15} {e['arch']:<12} {str(e.get('method')):<8} "
                    f"{e['dataset']:<16} {cells}  {_n_column(e.get('evaluation', {}))}")
    return "\n".join(rows)


def format_markdown(entries: list[dict[str, Any]]) -> str:
    """The README's results table: accuracy in %, AutoAttack and transfer attacks on their own n."""
    keys = [("clean", "clean"), ("fgsm", "FGSM"), ("pgd_sat", "PGD-SAT"), ("pgd_trades", "PGD-TRADES"),
            ("cw", "CW-inf"), ("autoattack", "AA"), ("bb_pgd_trades", "BB PGD-TR"), ("bb_cw", "BB CW")]
    rows = ["| name | role | method | " + " | ".join(label for _, label in keys) +
            " | (clean + AA) / 2, same images | train time |", "|---" * (len(keys) + 5) + "|"]
    for e in entries:
        ev = e.get("evaluation", {})
        acc = ev.get("accuracy", {})
        cells = [f"{100 * acc[k]:.2f}" if k in acc else "–" for k, _ in keys]
        # the mean uses the clean accuracy measured on AutoAttack's own images
        aa_report = next((x for x in ev.get("extra", []) if "autoattack" in x.get("accuracy", {})), None)
        aa_clean = (aa_report or {}).get("accuracy", {}).get("clean", acc.get("clean"))
        mean = f"{50 * (aa_clean + acc['autoattack']):.2f}" if "autoattack" in acc and aa_clean is not None else "–"
        secs = e.get("train_seconds")
        took = f"{secs / 60:.0f} min" if secs else "–"
        rows.append(f"| {e['name']} | {e['role'].replace('_', ' ')} | {e.get('method')} | " + " | ".join(cells) +
                    f" | {mean} | {took} |")
    return "\n".join(rows)


def _n_column(ev: dict[str, Any]) -> str:
    """'10000' or, where some attacks ran on fewer images, '10000 (autoattack: 1000)'."""
    n = ev.get("n", "-")
    other = {k: v for k, v in ev.get("n_by_attack", {}).items() if v != n and k in ("autoattack",)}
    return f"{n}" + "".join(f" ({k}: {v})" for k, v in other.items())


def attack_masks(entry: dict[str, Any], key: str) -> list[tuple[Any, int, int, str | None]]:
    """(per-image mask, n, seed, images fingerprint or None) of one attack from each of the
    entry's reports that kept its mask (the full-test one first, then the extra ones)."""
    ev = entry.get("evaluation", {})
    return [(decode_mask(report["masks"][key], report["n"]), report["n"], report.get("seed", 0), report.get("images"))
            for report in [ev, *ev.get("extra", [])] if report.get("masks", {}).get(key) is not None]


def same_images(mine: tuple, theirs: tuple) -> bool:
    """Two ``attack_masks`` items cover the same images in the same order: the same images
    fingerprint where both reports record one; for older reports, the same number of images
    drawn with the same seed."""
    if mine[3] is not None and theirs[3] is not None:
        return mine[3] == theirs[3] and mine[1] == theirs[1]
    return mine[1:3] == theirs[1:3]


#: the comparisons the README makes: (attack key, label); AutoAttack runs on 1,000 images
PAIRED_KEYS = (("clean", "clean"), ("pgd_sat", "PGD-SAT"), ("autoattack", "AutoAttack"))


def paired_comparisons(entries: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Each entry against ``baseline`` on the same images: {name, key: PairedDifference}.

    A comparison is made only where both reports hold per-image masks for the same images
    (see ``same_images``)."""
    base = next((e for e in entries if e["name"] == baseline), None)
    if base is None:
        raise KeyError(f"no zoo entry named '{baseline}'")
    theirs = {key: attack_masks(base, key) for key, _ in PAIRED_KEYS}   # decoded once, not per entry
    rows = []
    for e in entries:
        if e["name"] == baseline:
            continue
        row: dict[str, Any] = {"name": e["name"]}
        for key, _ in PAIRED_KEYS:
            pair = next(((m, t) for m in attack_masks(e, key) for t in theirs[key] if same_images(m, t)), None)
            if pair is not None:
                row[key] = paired_difference(pair[0][0], pair[1][0])
        rows.append(row)
    return rows


def format_paired_markdown(entries: list[dict[str, Any]], baseline: str,
                           compared: list[dict[str, Any]] | None = None) -> str:
    """Markdown: each entry minus the baseline, points with a paired 95 % CI, and a verdict
    (``compared``: :func:`paired_comparisons` of the same arguments, when the caller has them)."""
    rows = ["| model | " + " | ".join(f"{label}: difference vs {baseline} (95 % CI)" for _, label in PAIRED_KEYS)
            + " | n |", "|---" * (len(PAIRED_KEYS) + 2) + "|"]
    for row in paired_comparisons(entries, baseline) if compared is None else compared:
        cells, ns = [], []
        for key, _ in PAIRED_KEYS:
            d = row.get(key)
            if d is None:
                cells.append("–")
                continue
            mark = "" if d.significant else " (n.s.)"
            cells.append(f"{100 * d.diff:+.2f} ({100 * d.low:+.2f} to {100 * d.high:+.2f}){mark}")
            ns.append(str(d.n))
        rows.append(f"| {row['name']} | " + " | ".join(cells) + f" | {' / '.join(dict.fromkeys(ns)) or '–'} |")
    return "\n".join(rows)
