"""No import cycle in the library: each module imports on its own, and the graph of its
imports, function-level ones included, has no cycle (so no import hides in a function only
to dodge one)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ciard"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The ciard modules ``name`` imports anywhere in its file (top level or in a function)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:   # `from . import x` imports the module x
                if f"{target}.{alias.name}" in mods:
                    out.add(f"{target}.{alias.name}")
                elif target in mods and target != "ciard":
                    out.add(target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in mods)
    out.discard(name)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycle_even_through_function_level_imports():
    mods = _modules()
    graph = {name: _imports(name, path, mods) for name, path in mods.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_each_module_imports_on_its_own():
    """In one fresh interpreter, each module is imported after every ciard module is forgotten."""
    names = sorted(n for n in _modules() if n != "ciard.__main__")   # __main__ runs the CLI
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {names!r}:\n"
        "    for m in [m for m in sys.modules if m == 'ciard' or m.startswith('ciard.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]


#: refusals that need no model, data or checkpoint: each must come without loading torch
#: (~0.1 s instead of ~3 s: importing torch is most of a refused command's time)
TORCH_FREE_REFUSALS = [
    (["train", "--lr", "nan"], "is not a finite number"),
    (["train", "--name", "../x"], "is not allowed"),
    (["train", "--device", "cudaXYZ"], "unknown device"),
    (["train", "--student", "resnet21"], "unknown model"),
    (["train", "--dataset", "nope"], "unknown dataset"),
    (["train", "--method", "nope"], "unknown method"),
    (["train", "--epochs", "0"], "must be at least 1"),
    (["train", "--eps", "2"], "must be in (0, 1]"),
    (["train", "--resume", "/nonexistent-ciard-run"], "no run directory"),
    (["train", "--config", "/nonexistent-ciard.json"], "config file not found"),
    (["eval", "--checkpoint", "zoo:demo-clean-resnet20", "--n", "-5"], "must be at least 0"),
    (["eval", "--checkpoint", "zoo:demo-clean-resnet20", "--batch-size", "0"], "must be at least 1"),
    (["eval", "--checkpoint", "zoo:demo-clean-resnet20", "--device", "cudaXYZ"], "unknown device"),
    (["eval", "--checkpoint", "zoo:demo-clean-resnet20", "--attacks", "clean,nope"], "unknown attack 'nope'"),
    (["eval", "--checkpoint", "zoo:demo-clean-resnet20", "--attacks", ","], "names no attack"),
    (["eval", "--checkpoint", "zoo:demo-clean-resnet20", "--attacks", "bb_cw"], "need --source"),
]


def test_bad_flags_are_refused_without_loading_torch(tmp_path):
    """One process runs every case through the CLI's main and reports, per case, its exit status,
    its one line, and whether torch had been imported by then."""
    script = f"""
import contextlib, io, json, sys
from ciard.cli import main
out = []
for argv, _ in {TORCH_FREE_REFUSALS!r}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    out.append([code, err.getvalue().strip().splitlines()[-1:], "torch" in sys.modules])
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-2000:]
    for (argv, expect), (code, line, torch_loaded) in zip(TORCH_FREE_REFUSALS, json.loads(res.stdout)):
        assert code == 2 and line and line[0].startswith("error: ") and expect in line[0], (argv, code, line)
        assert not torch_loaded, f"{' '.join(argv)} loaded torch before refusing"
