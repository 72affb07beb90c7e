#!/usr/bin/env python
"""Build the embedded default dataset ``assets/cifar10-default.zip``.

The default dataset is a class-balanced CIFAR-10 subset (by default 500 train and
100 test images per class) picked deterministically from the full JPEG archive.
The original JPEG bytes are copied verbatim (no re-encoding, so pixels are
identical to the full archive's) into an uncompressed zip laid out as
``train/<class>/NNNN.jpg`` and ``test/<class>/NNNN.jpg``.

The output is byte-for-byte reproducible: entries are written in sorted order with
a fixed timestamp, so rerunning with the same arguments gives an identical file
(and no spurious git diff).

Usage::

    python tools/make_default_dataset.py                       # defaults
    python tools/make_default_dataset.py --archive FILE --seed 0 --out assets/cifar10-default.zip
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np

logger = logging.getLogger("make_default_dataset")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARCHIVE = "/work/shared/data/cifar10-jpeg.tar.gz"
DEFAULT_OUT = REPO_ROOT / "assets" / "cifar10-default.zip"
SPLITS = ("train", "test")
# A fixed timestamp makes the zip reproducible (zip needs a date >= 1980).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _split_member(name: str) -> tuple[str, str, str, str] | None:
    """Return (prefix, split, class, filename) for ``[prefix/]split/class/file.jpg``."""
    parts = PurePosixPath(name).parts
    if len(parts) < 3 or parts[-3] not in SPLITS:
        return None
    if not parts[-1].lower().endswith((".jpg", ".jpeg")) or parts[-1].startswith("."):
        return None
    return "/".join(parts[:-3]), parts[-3], parts[-2], parts[-1]


def read_archive(archive: Path) -> dict[str, dict[str, dict[str, bytes]]]:
    """Read every JPEG of the archive: ``{split: {class: {filename: bytes}}}``."""
    found: dict[str, dict[str, dict[str, bytes]]] = {s: defaultdict(dict) for s in SPLITS}
    prefixes: set[str] = set()
    # Stream the tar once; the whole CIFAR-10 JPEG set is ~55 MB, fine to hold in memory.
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            if not member.isfile():
                continue
            parsed = _split_member(member.name)
            if parsed is None:
                continue
            prefix, split, cls, fname = parsed
            prefixes.add(prefix)
            fh = tf.extractfile(member)
            assert fh is not None  # regular file
            found[split][cls][fname] = fh.read()
    if len(prefixes) != 1:
        raise SystemExit(f"expected one <prefix>/train|test/<class>/ layout in {archive}, "
                         f"found prefixes {sorted(prefixes)}")
    return {s: dict(v) for s, v in found.items()}


def choose(names: list[str], k: int, rng: np.random.Generator, where: str) -> list[str]:
    """Pick ``k`` of ``names`` at random (sorted first, so the archive order is irrelevant)."""
    names = sorted(names)
    if k > len(names):
        raise SystemExit(f"{where}: asked for {k} images, only {len(names)} available")
    picked = rng.choice(len(names), size=k, replace=False)
    return [names[i] for i in sorted(picked)]


def build(archive: Path, out: Path, per_class: dict[str, int], seed: int) -> None:
    data = read_archive(archive)
    classes = sorted(data["train"])
    if sorted(data["test"]) != classes:
        raise SystemExit(f"train/test class folders differ: {classes} vs {sorted(data['test'])}")
    # One generator per (split, class) seeded from (seed, split, class index): the choice
    # for one class does not depend on how many images were drawn for another.
    entries: list[tuple[str, bytes]] = []
    for split_idx, split in enumerate(SPLITS):
        for cls_idx, cls in enumerate(classes):
            rng = np.random.default_rng([seed, split_idx, cls_idx])
            files = data[split][cls]
            for fname in choose(list(files), per_class[split], rng, f"{split}/{cls}"):
                entries.append((f"{split}/{cls}/{fname}", files[fname]))
    entries.sort()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    # ZIP_STORED: JPEG data is already entropy-coded; storing keeps reads trivial and the
    # bytes identical to the source files.
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, payload in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, payload)
    tmp.replace(out)

    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    counts = {s: sum(1 for n, _ in entries if n.startswith(s + "/")) for s in SPLITS}
    logger.info("wrote %s: %d bytes, %s images, %d classes, sha256 %s",
                out, out.stat().st_size, counts, len(classes), digest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archive", type=Path, default=Path(DEFAULT_ARCHIVE),
                    help="CIFAR-10 JPEG archive (.tar.gz/.tar) with [prefix/]train|test/<class>/*.jpg")
    ap.add_argument("--train-per-class", type=int, default=500)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.archive.is_file():
        logger.error("archive not found: %s (pass --archive FILE)", args.archive)
        return 2
    build(args.archive, args.out,
          {"train": args.train_per_class, "test": args.test_per_class}, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
