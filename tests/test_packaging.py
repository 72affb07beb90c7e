"""`pip install .` gives a working `ciard`: installed into a fresh venv, it lists the zoo from
anywhere. Nothing is downloaded: torch and the build tools come from this environment (a .pth
file in the new venv points at this interpreter's site-packages), and pip runs with --no-deps,
--no-build-isolation and --no-index."""
from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def test_pip_install_gives_a_ciard_command_with_its_zoo(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # this environment's packages (torch, pip, setuptools) behind the new venv's own
    Path(purelib, "outer-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    build = tmp_path / "src"   # a copy, so the build leaves no build/ or egg-info in the checkout
    subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True)
    files = _run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"]).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file():
            (build / name).parent.mkdir(parents=True, exist_ok=True)
            (build / name).write_bytes(src.read_bytes())
    pip = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                "--disable-pip-version-check", "-q", str(build)], env=env, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-2000:]

    ciard = env_dir / "bin" / "ciard"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    helped = _run([str(ciard), "--help"], env=env, cwd=elsewhere)
    assert helped.returncode == 0, helped.stderr
    assert "train" in helped.stdout and "zoo" in helped.stdout

    zoo = _run([str(ciard), "zoo"], env=env, cwd=elsewhere)
    assert zoo.returncode == 0, zoo.stderr
    assert "cifar10-robust-resnet20" in zoo.stdout   # the manifest and weights were installed

    # the installed package is the one that ran, and it finds its shipped files
    where = _run([str(py), "-c", "import ciard, ciard.resources as r, ciard.data as d; "
                  "print(ciard.__file__); print(r.ZOO_DIR); print(d.DEFAULT_ASSET.is_file()); print(r.APP.is_file())"],
                 env=env, cwd=elsewhere).stdout.split()
    assert Path(where[0]).is_relative_to(env_dir), where
    assert Path(where[1]).is_relative_to(env_dir), where
    assert where[2:] == ["True", "True"]
