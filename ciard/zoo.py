"""The shipped model zoo: ``checkpoints/*.pt`` described by ``checkpoints/manifest.json``.

Each entry records what a user needs to trust and reproduce it: name, file, role
(clean_teacher / robust_teacher / student), method, architecture, dataset, the command that
trained it, training time and hardware, sha256, and its evaluation, each figure with the
command that measured it. ``python -m ciard zoo`` lists it; ``zoo add`` registers a model
(copies the weights-only checkpoint, hashes it, evaluates it, writes the entry).
"""
from __future__ import annotations

import json
import platform
import time
from typing import Any

from . import checkpoints
from .checkpoints import MANIFEST, ZOO_DIR


def read_manifest() -> dict[str, Any]:
    if not MANIFEST.is_file():
        return {"format": 1, "entries": []}
    return json.loads(MANIFEST.read_text())


def write_manifest(manifest: dict[str, Any]) -> None:
    ZOO_DIR.mkdir(parents=True, exist_ok=True)
    tmp = MANIFEST.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(MANIFEST)


def hardware() -> str:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    from .bench import _device_name
    return f"CPU: {_device_name(torch.device('cpu'))}, {platform.machine()}"


def add_entry(*, name: str, source: str, role: str, dataset: str, command: str,
              train_seconds: float | None, default: bool, evaluation: dict[str, Any] | None,
              eval_command: str | None, notes: str = "") -> dict[str, Any]:
    """Copy a checkpoint into the zoo (model-only) and record it in the manifest."""
    model = checkpoints.load_model(source)
    ck = checkpoints.load(source)
    dest = ZOO_DIR / f"{name}.pt"
    checkpoints.save_model(model, dest, config=ck.get("config"), metrics=ck.get("metrics"))
    cfg = ck.get("config") or {}
    entry = {
        "name": name, "file": dest.name, "role": role, "default": default,
        "method": cfg.get("method", {}).get("method"), "arch": model.arch,
        "num_classes": model.num_classes, "dataset": dataset, "command": command,
        "train_seconds": train_seconds, "hardware": hardware(), "sha256": checkpoints.sha256(dest),
        "size_bytes": dest.stat().st_size, "added": time.strftime("%Y-%m-%d"),
        "evaluation": evaluation or {}, "eval_command": eval_command, "notes": notes,
    }
    manifest = read_manifest()
    manifest["entries"] = [e for e in manifest["entries"] if e["name"] != name] + [entry]
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
                    f"{e['dataset']:<16} {cells}  {e.get('evaluation', {}).get('n', '-')}")
    return "\n".join(rows)
