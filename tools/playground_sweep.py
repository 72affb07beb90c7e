"""Where does the push loss make a measurable difference in 2-D? A seed sweep over settings.

For each setting below, ``ciard.playground.repeat_seeds`` trains the four Playground models
over N seeds (default 10) and compares the CIARD student with push on against its push-off
twin (same data, initialisation, batches and attack noise per seed): the mean paired
difference in clean and PGD-20 test accuracy with its 95 % t interval. A difference counts as
measurable only when that interval excludes 0.

    PYTHONPATH=. python tools/playground_sweep.py [--seeds 10] [--json out.json] [--only NAME ...]

Prints one markdown table (the README's "Playground" section quotes it).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ciard.playground import PlaygroundSettings, repeat_seeds  # noqa: E402

BASE = PlaygroundSettings()
#: name -> settings: the base (moons) and one change at a time along each axis the issue names
SETTINGS: dict[str, PlaygroundSettings] = {
    "moons (base)": BASE,
    "moons, eps 0.3": replace(BASE, eps=0.3),
    "moons, noise 0.3": replace(BASE, noise=0.3),
    "circles": replace(BASE, dataset="circles"),
    "spirals, 3 classes": replace(BASE, dataset="spirals", classes=3),
    "blobs, 4 classes, overlap": replace(BASE, dataset="blobs", classes=4, noise=0.4),
    "moons, small student mlp-8x2": replace(BASE, student="mlp-8x2"),
    "moons, big student mlp-128x3": replace(BASE, student="mlp-128x3"),
    "moons, weak robust teacher (0.3 eps)": replace(BASE, robust_strength=0.3),
    "moons, push weight 0.1": replace(BASE, push_weight=0.1),
}


def fmt(iv) -> str:
    return f"{100 * iv.mean:+.1f} [{100 * iv.low:+.1f}, {100 * iv.high:+.1f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--json", help="also write every per-seed figure here")
    ap.add_argument("--only", nargs="*", help="names (substrings) of the settings to run")
    args = ap.parse_args(argv)
    chosen = {k: v for k, v in SETTINGS.items() if not args.only or any(o in k for o in args.only)}
    rows, dump = [], {}
    print("| setting | push on: clean / PGD-20 | push off: clean / PGD-20 | on - off, clean (95 % CI) "
          "| on - off, PGD-20 (95 % CI) | measurable |", flush=True)
    print("|---|---|---|---|---|---|", flush=True)
    t0 = time.perf_counter()
    for name, s in chosen.items():
        rep = repeat_seeds(s, n=args.seeds)
        summ = rep.summary()
        on, off, d = summ["roles"]["student"], summ["roles"]["twin"], summ["difference"]
        measurable = [m for m in ("clean", "pgd") if d[m].excludes_zero]
        row = (f"| {name} | {100 * on['clean'].mean:.1f} / {100 * on['pgd'].mean:.1f} "
               f"| {100 * off['clean'].mean:.1f} / {100 * off['pgd'].mean:.1f} "
               f"| {fmt(d['clean'])} | {fmt(d['pgd'])} | {', '.join(measurable) or 'no'} |")
        print(row, flush=True)
        rows.append(row)
        dump[name] = {"settings": asdict(s), "seeds": rep.seeds, "accuracy": rep.accuracy,
                      "seconds": rep.seconds,
                      "difference": {m: d[m].as_dict() for m in d},
                      "roles": {r: {m: v.as_dict() for m, v in ms.items()} for r, ms in summ["roles"].items()}}
    print(f"\n{len(chosen)} settings x {args.seeds} seeds in {time.perf_counter() - t0:.0f} s; points are "
          f"accuracy in %, differences in points, paired by seed (Student t).", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
