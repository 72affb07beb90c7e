"""Data layer: dataset loading, splits, in-memory batching and the paper's augmentation.

Images are held in memory as uint8 ``N x 3 x H x W`` tensors (CIFAR-10 train is 150 MB
that way, 4x less than float32) and converted to float in [0, 1] one batch at a time.
For 32x32 images this beats a ``DataLoader`` with workers: there is no per-sample
Python, collation or inter-process copying, and augmentation runs vectorised on the
batch, on whatever device the batch lives on.

Sources (see :func:`load_dataset`):

* ``"default"``          -- the CIFAR-10 subset embedded in ``assets/cifar10-default.zip``
  (5,000 train / 1,000 test); needs no network and no external files.
* ``"cifar10-archive"``  -- a .tar.gz/.tar/.zip of ``[prefix/]train|test/<class>/*.jpg``
  (e.g. the full 60k CIFAR-10 JPEG archive); decoded once and cached as ``.npz``.
* ``"cifar10"``, ``"cifar100"`` -- torchvision's datasets (optionally downloaded).
* ``"folder"``           -- a directory of ``train/`` and ``test/`` (or ``val/``) class folders,
  including Tiny-ImageNet's layout.
"""

from __future__ import annotations

import hashlib
import io
import logging
import lzma
import math
import os
import tarfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from . import cancel, resources
from .archives import TAR_MODES, archive_kind
from .config import SOURCES
from .errors import DataError

logger = logging.getLogger(__name__)

ASSETS_DIR = resources.ASSETS_DIR
DEFAULT_ASSET = ASSETS_DIR / "cifar10-default.zip"
ARCHIVE_ENV = "CIARD_CIFAR10_ARCHIVE"
CACHE_ENV = "CIARD_CACHE"
# Bump when the cache file format or decoding changes, so stale caches are not reused.
_CACHE_VERSION = 1
_CROP_PADDING = 4


# ----------------------------------------------------------------------------------------
# Containers
# ----------------------------------------------------------------------------------------


@dataclass
class ImageData:
    """Images of one split: ``x`` uint8 ``N x 3 x H x W``, ``y`` int64 ``N``."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        # Catch shape/dtype mistakes here, not as a confusing error deep in training.
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise DataError(f"ImageData.x must be uint8 N x C x H x W, got {self.x.dtype} "
                            f"{tuple(self.x.shape)}")
        if self.y.dtype != torch.int64 or self.y.dim() != 1 or len(self.y) != len(self.x):
            raise DataError(f"ImageData.y must be int64 of length {len(self.x)}, got "
                            f"{self.y.dtype} {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ImageData:
        """The images at ``indices`` (a copy), same class list."""
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.x.device)
        # index_select is ~2x faster than advanced indexing for whole-image rows.
        return ImageData(self.x.index_select(0, idx), self.y.index_select(0, idx), list(self.classes))

    def class_counts(self) -> torch.Tensor:
        """Number of images per class, length ``num_classes``."""
        return torch.bincount(self.y, minlength=self.num_classes)


@dataclass
class DatasetSplits:
    """Train / held-out validation / test splits of one dataset."""

    train: ImageData
    val: ImageData
    test: ImageData
    name: str
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of every image."""
        return int(self.train.x.shape[2]), int(self.train.x.shape[3])

    @property
    def channels(self) -> int:
        return int(self.train.x.shape[1])


# ----------------------------------------------------------------------------------------
# Tensor helpers and augmentation
# ----------------------------------------------------------------------------------------


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] (floating input is returned unchanged)."""
    if x.is_floating_point():
        return x
    if x.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 or floating images, got {x.dtype}")
    return x.to(torch.float32).div_(255.0)


def _rand_device(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    # A generator can only draw on its own device; without one, draw where the data is.
    return generator.device if generator is not None else x.device


def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with 4-pixel zero padding + random horizontal flip, per image.

    This is torchvision's ``RandomCrop(size, padding=4)`` + ``RandomHorizontalFlip()``
    done for the whole ``N x C x H x W`` batch at once: the batch is padded once, and
    each output pixel is gathered from the padded batch at its image's random offset
    (mirrored for flipped images). All randomness comes from ``generator`` (or the
    global RNG of the relevant device when ``None``), drawn in a fixed order -- row
    offsets, column offsets, flips, each of length N -- so results are reproducible.
    Works on any device and dtype; returns a new contiguous tensor.
    """
    if x.dim() != 4:
        raise ValueError(f"augment expects N x C x H x W, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if n == 0:
        return x.clone()
    p = _CROP_PADDING
    rdev = _rand_device(x, generator)
    dy = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=rdev).to(x.device)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=rdev).to(x.device)
    flip = (torch.rand(n, generator=generator, device=rdev) < 0.5).to(x.device)

    padded = F.pad(x, (p, p, p, p))  # zeros, as in the paper's RandomCrop(padding=4)
    hp, wp = h + 2 * p, w + 2 * p
    rows = dy[:, None] + torch.arange(h, device=x.device)  # N x H
    cols_fwd = torch.arange(w, device=x.device)
    # Flipping the crop == reading its columns right-to-left.
    cols = dx[:, None] + torch.where(flip[:, None], (w - 1) - cols_fwd, cols_fwd)  # N x W
    flat_idx = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w)
    out = torch.gather(padded.reshape(n, c, hp * wp), 2, flat_idx.expand(n, c, h * w))
    return out.reshape(n, c, h, w)


# ----------------------------------------------------------------------------------------
# Index selection: stratified split and class-balanced subsets
# ----------------------------------------------------------------------------------------


def _within_class_rank(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """For each sample, its position in a random ordering of its own class."""
    n = len(y)
    perm = torch.randperm(n, generator=generator)
    grouped = perm[torch.argsort(y[perm], stable=True)]  # by class, random within class
    counts = torch.bincount(y, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long)
    rank[grouped] = torch.arange(n) - starts[y[grouped]]
    return rank


def _seeded(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, *stream)`` via SeedSequence mixing, so that
    nearby seeds/epochs give unrelated streams."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *stream]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


def stratified_split(y: torch.Tensor, val_size: int, seed: int = 0,
                     num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices into (train, val), holding out ``val_size`` images spread as
    evenly over classes as the data allows (``balanced_indices``' rule, its own random
    stream). Deterministic given ``seed``; both index tensors sorted."""
    if isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 0:
        raise DataError(f"val_size must be a whole number >= 0, got {val_size!r}")
    if val_size >= len(y) > 0:
        raise DataError(f"val_size {val_size} leaves no training images (the split has {len(y)})")
    k = int(num_classes if num_classes is not None else (int(y.max()) + 1 if len(y) else 0))
    is_val = torch.zeros(len(y), dtype=torch.bool)
    if val_size:
        is_val[_balanced(y, val_size, k, _seeded(seed, 1))] = True
    return torch.nonzero(~is_val).flatten(), torch.nonzero(is_val).flatten()


def balanced_indices(y: torch.Tensor, n: int, seed: int = 0,
                     num_classes: int | None = None) -> torch.Tensor:
    """Sorted indices of ``n`` samples spread as evenly over classes as the data allows.

    Every class gets ``n // C`` (the remainder goes to a seeded choice of classes); a
    class with too few samples gives all it has and the shortfall goes to the others.
    """
    k = int(num_classes if num_classes is not None else (int(y.max()) + 1 if len(y) else 0))
    if n >= len(y):
        return torch.arange(len(y))
    return _balanced(y, n, k, _seeded(seed, 2))


def _balanced(y: torch.Tensor, n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    rank = _within_class_rank(y, k, gen)
    class_order = torch.randperm(k, generator=gen)
    # Round-robin over classes: take every class's rank-0 sample, then rank-1, ...
    key = rank * k + class_order[y]
    return torch.sort(torch.argsort(key)[:n]).values


def fixed_subset(data: ImageData, n: int, seed: int = 0) -> ImageData:
    """A deterministic class-balanced subset of ``n`` images (all of them if ``n >= len``)."""
    if n >= len(data):
        return data
    return data.subset(balanced_indices(data.y, n, seed, data.num_classes))


# ----------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------


class BatchIterator:
    """Mini-batches from an in-memory :class:`ImageData`, as float [0, 1] on ``device``.

    The epoch's order depends only on ``(seed, epoch)`` (its own generator), so a run
    resumed at ``start_batch`` sees exactly the remaining batches of that epoch.
    Augmentation draws from the ``generator`` given to :meth:`epoch_batches` (the trainer
    checkpoints its state) or, if ``None``, from the global RNG.

    Data-parallel (``world > 1``): ``batch_size`` is the global batch; rank ``rank`` yields
    its ``batch_size / world`` share of each one, taken by a DistributedSampler from the
    epoch's permutation, so the shards of batch k over all ranks are the 1-process batch k.
    """

    def __init__(self, data: ImageData, batch_size: int, *, shuffle: bool = True,
                 augment: bool = False, drop_last: bool = False, seed: int = 0,
                 device: torch.device | str = "cpu", rank: int = 0, world: int = 1) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if world > 1 and (batch_size % world or not drop_last):
            raise ValueError(f"data-parallel batches need drop_last and a batch_size ({batch_size}) "
                             f"divisible by the number of processes ({world})")
        self.rank, self.world = int(rank), int(world)
        self.device = torch.device(device)
        # Move the uint8 data once; per batch only indexing + float conversion remain.
        self.x = data.x.to(self.device)
        self.y = data.y.to(self.device)
        self.classes = list(data.classes)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.seed = int(seed)
        if drop_last and len(self.x) < batch_size:
            logger.warning("BatchIterator: %d images < batch_size %d with drop_last: no batches",
                           len(self.x), batch_size)

    @property
    def num_samples(self) -> int:
        return int(self.x.shape[0])

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch`` (CPU long tensor); a function of (seed, epoch) only."""
        if not self.shuffle:
            order = torch.arange(self.num_samples)
        else:
            order = torch.randperm(self.num_samples, generator=_seeded(self.seed, 3, int(epoch)))
        if self.world > 1:   # this rank's interleaved share: order[rank::world]
            from torch.utils.data import DistributedSampler
            sampler = DistributedSampler(range(len(order)), num_replicas=self.world, rank=self.rank,
                                         shuffle=False, drop_last=True)
            order = order[torch.tensor(list(sampler), dtype=torch.long)]
        return order

    def epoch_batches(self, epoch: int, start_batch: int = 0,
                      generator: torch.Generator | None = None
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` for batches ``start_batch .. len(self)-1`` of ``epoch``."""
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch {start_batch} outside [0, {len(self)}]")
        order = self.epoch_order(epoch).to(self.device)
        size = self.batch_size // self.world
        for b in range(start_batch, len(self)):
            idx = order[b * size:(b + 1) * size]
            xb = to_float(self.x[idx])
            if self.augment:
                xb = augment(xb, generator)
            yield xb, self.y[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch_batches(0)


# ----------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------

# An image source is (display name, bytes or filesystem path).
_Item = tuple[str, "bytes | Path"]


def _image_extensions() -> frozenset[str]:
    Image.init()  # make sure every plugin registered its extensions
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def _is_image_name(name: str, exts: frozenset[str]) -> bool:
    base = PurePosixPath(name).name
    # Skip hidden files and macOS resource forks (._foo.jpg), which are not images.
    return not base.startswith(".") and PurePosixPath(base).suffix.lower() in exts


def _format_for(name: str) -> str | None:
    Image.init()
    return Image.registered_extensions().get(PurePosixPath(name).suffix.lower())


def _decode_one(name: str, src: bytes | Path, fmt: str | None = None) -> np.ndarray:
    fp = io.BytesIO(src) if isinstance(src, bytes) else src
    try:
        try:
            # Telling Pillow the format (from the extension) skips probing every plugin,
            # which otherwise costs as much as decoding a 32x32 JPEG.
            im = Image.open(fp, formats=[fmt] if fmt else None)
        except UnidentifiedImageError:
            if fmt is None:
                raise
            if isinstance(fp, io.BytesIO):
                fp.seek(0)
            im = Image.open(fp)  # misnamed file (e.g. a PNG called .jpg): let Pillow probe
        with im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {name}: {e}") from None


def _decode_images(items: Sequence[_Item], what: str) -> np.ndarray:
    """Decode images to one uint8 ``N x 3 x H x W`` array.

    Images whose size differs from the most common size are resized to it (with a
    warning), because a batch tensor needs a single size.
    """
    if not items:
        return np.zeros((0, 3, 1, 1), np.uint8)
    # Pillow decoding of tiny JPEGs is dominated by per-call Python overhead; threads were
    # measured slower (GIL contention), so decode serially.
    arrays = []
    for name, src in items:
        cancel.poll()   # the app can end a long decode (page left or rerun)
        arrays.append(_decode_one(name, src, _format_for(name)))
    sizes = Counter(a.shape[:2] for a in arrays)
    (h, w), _ = sizes.most_common(1)[0]
    odd = len(arrays) - sizes[(h, w)]
    if odd:
        logger.warning("%s: %d of %d images are not %dx%d (sizes seen: %s); resizing them",
                       what, odd, len(arrays), w, h,
                       ", ".join(f"{sw}x{sh}" for (sh, sw), _ in sizes.most_common(5)))
    out = np.empty((len(arrays), h, w, 3), np.uint8)
    for i, a in enumerate(arrays):
        if a.shape[:2] != (h, w):
            a = np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR))
        out[i] = a
        arrays[i] = None  # type: ignore[call-overload]  # free as we go: halves peak memory
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _to_image_data(x: np.ndarray, y: np.ndarray, classes: list[str]) -> ImageData:
    return ImageData(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), list(classes))


# ----------------------------------------------------------------------------------------
# Archive sources (default asset and cifar10-archive)
# ----------------------------------------------------------------------------------------

_SPLIT_DIRS = ("train", "test", "val")


def _read_archive_members(path: Path) -> list[tuple[str, bytes]]:
    """All image files of a .zip / .tar(.gz|.bz2|.xz) archive as (name, bytes).

    The kind comes from the file's magic bytes and the archive is opened in that one mode
    (never ``r:*``): a file that is no archive, e.g. zeros named .tar.gz, is refused at once.
    """
    exts = _image_extensions()
    out: list[tuple[str, bytes]] = []
    try:
        kind = archive_kind(path)
    except ValueError as e:
        raise DataError(str(e)) from None
    except OSError as e:
        raise DataError(f"cannot read archive {path}: {e.strerror}") from None
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    cancel.poll()
                    if not info.is_dir() and _is_image_name(info.filename, exts):
                        out.append((info.filename, zf.read(info)))
        else:
            with tarfile.open(path, TAR_MODES[kind]) as tf:
                for member in tf:  # streamed: one pass even through gzip
                    cancel.poll()
                    if member.isfile() and _is_image_name(member.name, exts):
                        fh = tf.extractfile(member)
                        if fh is not None:
                            out.append((member.name, fh.read()))
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError) as e:
        raise DataError(f"cannot read archive {path}: {e}") from None
    return out


def _layout_from_names(names: Sequence[str], where: str
                       ) -> tuple[list[str], dict[str, list[tuple[int, str]]]]:
    """Find ``[prefix/]split/<class>/<file>`` in ``names``.

    Returns the sorted train class list and, per split, ``(member index, class)`` pairs
    sorted by name. The prefix may be empty or any single directory path.
    """
    by_prefix: dict[str, dict[str, list[tuple[str, int, str]]]] = {}
    for i, name in enumerate(names):
        parts = PurePosixPath(name).parts
        if len(parts) >= 3 and parts[-3] in _SPLIT_DIRS:
            prefix = "/".join(parts[:-3])
            by_prefix.setdefault(prefix, {}).setdefault(parts[-3], []).append((name, i, parts[-2]))
    candidates = {p: s for p, s in by_prefix.items() if "train" in s and ("test" in s or "val" in s)}
    if not candidates:
        raise DataError(f"no [prefix/]train/<class>/<image> and test/<class>/<image> layout "
                        f"found in {where}")
    if len(candidates) > 1:
        raise DataError(f"ambiguous layout in {where}: train/ and test/ under several prefixes "
                        f"{sorted(candidates)}")
    prefix, splits = next(iter(candidates.items()))
    test_key = "test" if "test" in splits else "val"
    if test_key == "val":
        logger.info("%s: no test/ split; using val/ as the test set", where)
    classes = sorted({c for _, _, c in splits["train"]})
    extra = sorted({c for _, _, c in splits[test_key]} - set(classes))
    if extra:
        raise DataError(f"{where}: {test_key}/ has classes not in train/: {extra[:5]}")
    out = {s: [(i, c) for _, i, c in sorted(splits[k])] for s, k in (("train", "train"), ("test", test_key))}
    return classes, out


def _decode_archive(path: Path) -> dict[str, np.ndarray | list[str]]:
    """Decode a class-folder archive into ``{x_train, y_train, x_test, y_test, classes}``."""
    t0 = time.perf_counter()
    members = _read_archive_members(path)
    classes, layout = _layout_from_names([n for n, _ in members], str(path))
    cls_idx = {c: k for k, c in enumerate(classes)}
    result: dict[str, np.ndarray | list[str]] = {"classes": classes}
    for split, entries in layout.items():
        items = [(f"{path}:{members[i][0]}", members[i][1]) for i, _ in entries]
        result[f"x_{split}"] = _decode_images(items, f"{path} {split}")
        result[f"y_{split}"] = np.array([cls_idx[c] for _, c in entries], dtype=np.int64)
    logger.info("decoded %s: %d train + %d test images in %.1f s", path,
                len(result["y_train"]), len(result["y_test"]), time.perf_counter() - t0)
    return result


def _default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ciard")


def _cache_key(path: Path) -> str:
    # (absolute path, size, mtime) identifies the archive version without hashing 20+ MB.
    st = path.stat()
    ident = f"v{_CACHE_VERSION}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


def _load_archive_cached(path: Path, cache_dir: Path) -> dict[str, np.ndarray | list[str]]:
    cache_file = cache_dir / f"archive-{_cache_key(path)}.npz"
    if cache_file.is_file():
        try:
            t0 = time.perf_counter()
            with np.load(cache_file, allow_pickle=False) as z:
                arrays: dict[str, np.ndarray | list[str]] = {k: z[k] for k in
                                                            ("x_train", "y_train", "x_test", "y_test")}
                arrays["classes"] = [str(c) for c in z["classes"]]
            logger.info("loaded %s from cache %s in %.2f s", path, cache_file, time.perf_counter() - t0)
            return arrays
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            # A truncated or stale cache must not block training: rebuild it.
            logger.warning("ignoring unreadable cache %s (%s); decoding again", cache_file, e)
    arrays = _decode_archive(path)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.stem}.{os.getpid()}.tmp.npz")
        # Uncompressed npz: loading is then a plain read, which keeps cached loads < 1 s.
        np.savez(tmp, **{k: v for k, v in arrays.items() if k != "classes"},
                 classes=np.array(arrays["classes"]))
        os.replace(tmp, cache_file)  # atomic: concurrent runs never see a partial cache
        logger.info("cached decoded %s as %s", path, cache_file)
    except OSError as e:
        logger.warning("could not write cache %s (%s); continuing without it", cache_file, e)
    return arrays


# ----------------------------------------------------------------------------------------
# Folder source
# ----------------------------------------------------------------------------------------


def _images_under(d: Path, exts: frozenset[str]) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file() and _is_image_name(p.name, exts))


def _scan_split_dir(d: Path, exts: frozenset[str]) -> list[tuple[Path, str]] | None:
    """Labelled images of one split directory as (path, class), or ``None`` if unlabelled.

    Layouts: ``<class>/**/<image>`` (Tiny-ImageNet train has ``<class>/images/``), or flat
    ``images/`` plus an ``*annotations.txt`` mapping file name -> class (Tiny-ImageNet val).
    A lone ``images/`` without annotations (Tiny-ImageNet test) is unlabelled.
    """
    subdirs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    annotations = sorted(d.glob("*annotations.txt"))
    if (d / "images").is_dir() and (annotations or [p.name for p in subdirs] == ["images"]):
        if not annotations:
            return None
        labels: dict[str, str] = {}
        for line in annotations[0].read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2:
                labels[fields[0]] = fields[1]
        out = []
        for p in _images_under(d / "images", exts):
            if p.name not in labels:
                raise DataError(f"{p}: not listed in {annotations[0]}")
            out.append((p, labels[p.name]))
        return out
    return [(p, sd.name) for sd in subdirs for p in _images_under(sd, exts)]


def _load_folder(root: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    exts = _image_extensions()
    if not (root / "train").is_dir():
        raise DataError(f"{root}: expected a train/ subfolder of class folders")
    train = _scan_split_dir(root / "train", exts)
    if not train:
        raise DataError(f"{root}/train: no labelled images found")
    test = None
    for name in ("test", "val"):
        if (root / name).is_dir():
            test = _scan_split_dir(root / name, exts)
            if test:
                break
            logger.info("%s/%s has no labelled images; skipping it", root, name)
    if not test:
        raise DataError(f"{root}: expected a labelled test/ or val/ subfolder")
    classes = sorted({c for _, c in train})
    extra = sorted({c for _, c in test} - set(classes))
    if extra:
        raise DataError(f"{root}: test classes not in train: {extra[:5]}")
    cls_idx = {c: k for k, c in enumerate(classes)}
    both = [(str(p), p) for p, _ in train] + [(str(p), p) for p, _ in test]
    # Decode train and test together so they share one (most common) image size.
    x = _decode_images(both, str(root))
    y = np.array([cls_idx[c] for _, c in train] + [cls_idx[c] for _, c in test], np.int64)
    n = len(train)
    return {"train": (x[:n], y[:n]), "test": (x[n:], y[n:])}, classes


# ----------------------------------------------------------------------------------------
# torchvision source
# ----------------------------------------------------------------------------------------


def _load_torchvision(source: str, root: Path, download: bool
                      ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    import torchvision  # imported lazily: only this source needs it

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[source]
    pretty = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[source]
    fix = ("pass --download on a machine with internet"
           + (", or use --dataset cifar10-archive --data-path FILE" if source == "cifar10" else ""))
    if not download and not root.is_dir():
        raise DataError(f"{pretty} not found under {root} (dataset path not found); {fix}")
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = cls(root=str(root), train=train, download=download)
        except Exception as e:  # noqa: BLE001 -- network/IO/integrity errors all mean "not available"
            logger.debug("torchvision %s failed", pretty, exc_info=True)
            what = "download failed" if download else "files absent or corrupt"
            raise DataError(f"{pretty} not found under {root} ({what}: "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                            f"{fix}") from None
        x = np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2))
        splits[split] = (x, np.asarray(ds.targets, dtype=np.int64))
        classes = list(ds.classes)
    return splits, classes


# ----------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------


def _require_path(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        raise DataError("this dataset source needs a path (--data-path)")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"dataset path not found: {p}")
    return p


def load_dataset(source: str = "default", path: str | None = None, *, val_size: int = 0,
                 train_subset: int | None = None, seed: int = 0, download: bool = False,
                 cache_dir: str | None = None) -> DatasetSplits:
    """Load a dataset as uint8 train / val / test splits.

    ``val`` holds out ``val_size`` class-balanced images of the *training* data (never the
    test set), chosen deterministically from ``seed``; the rest stays for training. ``train_subset`` then keeps a
    class-balanced subset of that many of the remaining training images.

    ``path`` is the archive file (``cifar10-archive``; default env ``CIARD_CIFAR10_ARCHIVE``),
    the torchvision root (``cifar10``/``cifar100``; default ``<cache_dir>/torchvision``)
    or the dataset directory (``folder``). ``cache_dir`` defaults to env ``CIARD_CACHE``
    or ``~/.cache/ciard``. Raises :class:`DataError` with a one-line reason on failure.
    """
    if source not in SOURCES:
        raise DataError(f"unknown dataset source {source!r}; valid sources: {', '.join(SOURCES)}")
    cache = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
    t0 = time.perf_counter()

    if source in ("default", "cifar10-archive"):
        if source == "default":
            archive = Path(path).expanduser() if path else DEFAULT_ASSET
            if not archive.is_file():
                raise DataError(f"dataset path not found: {archive} (the embedded default dataset; "
                                f"rebuild it with tools/make_default_dataset.py)")
            # 6k small JPEGs decode in well under a second: no cache, no side effects.
            arrays = _decode_archive(archive)
            name = "cifar10-default"
        else:
            env_path = os.environ.get(ARCHIVE_ENV)
            if path is None and not env_path:
                raise DataError(f"cifar10-archive needs an archive: pass --data-path FILE "
                                f"or set {ARCHIVE_ENV}")
            archive = _require_path(path if path is not None else env_path)
            if not archive.is_file():
                raise DataError(f"{archive} is not a file (expected a .tar.gz/.tar/.zip archive)")
            arrays = _load_archive_cached(archive, cache)
            name = "cifar10"
        classes = list(arrays["classes"])  # type: ignore[arg-type]
        splits = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in ("train", "test")}
    elif source in ("cifar10", "cifar100"):
        root = Path(path).expanduser() if path else cache / "torchvision"
        splits, classes = _load_torchvision(source, root, download)
        name = source
    else:  # folder
        root = _require_path(path)
        if not root.is_dir():
            raise DataError(f"{root} is not a directory (expected train/ and test/ class folders)")
        splits, classes = _load_folder(root)
        name = root.name

    full_train = _to_image_data(*splits["train"], classes)  # type: ignore[arg-type]
    test = _to_image_data(*splits["test"], classes)  # type: ignore[arg-type]
    train_idx, val_idx = stratified_split(full_train.y, val_size, seed, len(classes))
    if train_subset is not None:
        if train_subset <= 0:
            raise DataError(f"train_subset must be positive, got {train_subset}")
        if train_subset > len(train_idx):
            logger.warning("train_subset %d > %d available training images; using all",
                           train_subset, len(train_idx))
        train_idx = train_idx[balanced_indices(full_train.y[train_idx], train_subset, seed, len(classes))]
    result = DatasetSplits(train=full_train.subset(train_idx), val=full_train.subset(val_idx),
                           test=test, name=name, classes=classes)
    logger.info("dataset %s: %d train / %d val / %d test, %d classes, %dx%d, loaded in %.2f s",
                name, len(result.train), len(result.val), len(result.test), result.num_classes,
                *result.image_size, time.perf_counter() - t0)
    return result
