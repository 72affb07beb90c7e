"""Re-evaluate zoo entries independently of the project's evaluation code, and compare.

The manifest's figures come from ``python -m ciard eval`` (``ciard/evaluate.py``: its own
PGD, BatchNorm folded into the convolutions, the project's data layer). This re-measures
clean and PGD-20 accuracy along another path, sharing only the code that builds the network
from its checkpoint:

* the images are read straight from the CIFAR-10 JPEG archive with ``tarfile`` and Pillow
  (not ``ciard.data``): the first ``--per-class`` test images of each class, by file name;
* the model runs unfolded, in eval mode;
* PGD-20 is torchattacks' ``PGD`` (eps 8/255, step 2/255, uniform random start: the SAT
  protocol of the manifest's ``pgd_sat``), not ``ciard.attacks``.

For each entry it prints both figures, the difference, and the 95 % (Wilson) interval
of the re-measured accuracy, and says whether the difference is within the tolerance (by
default 2 points clean, 3 points PGD-20). The subset differs from the manifest's 10,000
images, so part of any difference is sampling: the interval shows how much.

    python tools/reeval.py cifar10-clean-resnet20 cifar10-robust-resnet20 cifar10-ciard-resnet20 \\
        --data-path ../shared/data/cifar10-jpeg.tar.gz [--per-class 100] [--json]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ciard import specs  # noqa: E402  (only to build each network from its checkpoint)
from ciard.stats import accuracy_interval  # noqa: E402
from ciard.zoo import read_manifest  # noqa: E402

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def archive_test_images(path: str | Path, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` test images of each class (by file name), as floats in [0, 1]."""
    names: dict[str, list[tarfile.TarInfo]] = {c: [] for c in CLASSES}
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and "/test/" in f"/{m.name}"]
        for m in members:
            cls = Path(m.name).parent.name
            if cls in names:
                names[cls].append(m)
        xs, ys = [], []
        for label, cls in enumerate(CLASSES):
            chosen = sorted(names[cls], key=lambda m: m.name)[:per_class]
            if len(chosen) < per_class:
                raise SystemExit(f"{path}: only {len(chosen)} test images of class {cls}")
            for m in chosen:
                img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
                xs.append(np.asarray(img, dtype=np.uint8))
                ys.append(label)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().div(255)
    return x, torch.tensor(ys)


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 200,
            seed: int = 0) -> dict[str, int]:
    import torchattacks
    model.eval()
    attack = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
    torch.manual_seed(seed)
    clean = robust = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        with torch.no_grad():
            ok = model(xb).argmax(1) == yb
        xa = attack(xb, yb)
        with torch.no_grad():
            ok_adv = model(xa).argmax(1) == yb
        clean += int(ok.sum())
        robust += int((ok & ok_adv).sum())   # robust = right clean and under attack, as the manifest
    return {"clean": clean, "pgd_sat": robust}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("entries", nargs="+", help="zoo entry names")
    p.add_argument("--data-path", required=True, help="cifar10-jpeg.tar.gz")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--tolerance-clean", type=float, default=2.0, help="points")
    p.add_argument("--tolerance-pgd", type=float, default=3.0, help="points")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    manifest = {e["name"]: e for e in read_manifest()["entries"]}
    unknown = [n for n in args.entries if n not in manifest]
    if unknown:
        raise SystemExit(f"no zoo entry named {unknown[0]}")
    t0 = time.perf_counter()
    x, y = archive_test_images(args.data_path, args.per_class)
    rows, ok = [], True
    for name in args.entries:
        t1 = time.perf_counter()
        model = specs.load_model(f"zoo:{name}", "cpu")
        counts = measure(model, x, y)
        ev = manifest[name].get("evaluation", {})
        for key, tol in (("clean", args.tolerance_clean), ("pgd_sat", args.tolerance_pgd)):
            n, k = len(y), counts[key]
            lo, hi = accuracy_interval(k, n)
            listed = ev.get("accuracy", {}).get(key)
            listed_n = ev.get("n_by_attack", {}).get(key, ev.get("n"))
            diff = None if listed is None else 100 * (k / n - listed)
            agree = diff is not None and abs(diff) <= tol
            ok &= agree
            rows.append({"entry": name, "attack": key, "reeval": k / n, "n": n, "ci95": [lo, hi],
                         "manifest": listed, "manifest_n": listed_n, "diff_points": diff,
                         "tolerance_points": tol, "agrees": agree,
                         "seconds": round(time.perf_counter() - t1, 1)})
    if args.json:
        print(json.dumps({"rows": rows, "all_agree": ok, "images": len(y), "seconds": round(time.perf_counter() - t0, 1)}))
    else:
        print(f"{'entry':<28} {'attack':<8} {'re-eval':>8} {'95% CI':>15} {'manifest':>9} {'diff':>7}  verdict")
        for r in rows:
            lo, hi = r["ci95"]
            listed = "-" if r["manifest"] is None else f"{100 * r['manifest']:.2f}"
            diff = "-" if r["diff_points"] is None else f"{r['diff_points']:+.2f}"
            verdict = "agrees" if r["agrees"] else f"DIFFERS by more than {r['tolerance_points']:g} points"
            print(f"{r['entry']:<28} {r['attack']:<8} {100 * r['reeval']:>7.2f} "
                  f"[{100 * lo:5.1f}, {100 * hi:5.1f}] {listed:>9} {diff:>7}  {verdict}")
        print(f"{len(y)} test images ({args.per_class} per class, first by file name), clean and "
              f"PGD-20 (torchattacks, eps 8/255, step 2/255, random start), fp32 on the CPU, "
              f"{time.perf_counter() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
