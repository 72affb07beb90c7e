"""Tests for ``ciard.data``: sources, splits, augmentation and batching.

Everything except the ``slow`` test runs on the embedded default dataset or on tiny
datasets written to ``tmp_path``; nothing touches the network.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ciard import data as D
from ciard.data import (
    SOURCES,
    BatchIterator,
    DataError,
    DatasetSplits,
    ImageData,
    augment,
    fixed_subset,
    load_dataset,
    stratified_split,
    to_float,
)

FULL_ARCHIVE = Path(os.environ.get("CIARD_CIFAR10_ARCHIVE", "/work/shared/data/cifar10-jpeg.tar.gz"))


@pytest.fixture(scope="module")
def default() -> DatasetSplits:
    return load_dataset("default", val_size=500, seed=0)


@pytest.fixture(scope="module")
def default_full_train() -> DatasetSplits:
    return load_dataset("default")


def _rand_images(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    # Strictly positive values: a zero in the output can then only come from padding.
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g) * 0.9 + 0.1


# ----------------------------------------------------------------------------------------
# Default dataset and splits
# ----------------------------------------------------------------------------------------


def test_default_dataset_loads(default: DatasetSplits) -> None:
    assert "default" in SOURCES
    assert default.num_classes == 10
    assert default.classes[0] == "airplane" and default.classes[-1] == "truck"
    assert default.image_size == (32, 32)
    for split in (default.train, default.val, default.test):
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.int64
        assert split.x.shape[1:] == (3, 32, 32)
        assert split.classes == default.classes
    xf = to_float(default.test.x[:64])
    assert xf.dtype == torch.float32
    assert 0.0 <= float(xf.min()) and float(xf.max()) <= 1.0
    assert float(xf.max()) > 0.5  # real images, not all black
    assert torch.equal(to_float(xf), xf)  # idempotent on float input


def test_default_split_sizes_and_balance(default: DatasetSplits) -> None:
    assert (len(default.train), len(default.val), len(default.test)) == (4500, 500, 1000)
    assert default.train.class_counts().tolist() == [450] * 10
    assert default.val.class_counts().tolist() == [50] * 10
    assert default.test.class_counts().tolist() == [100] * 10


def test_val_is_held_out_from_train(default: DatasetSplits, default_full_train: DatasetSplits) -> None:
    full = default_full_train.train
    assert len(full) == 5000 and len(default_full_train.val) == 0
    tr, va = stratified_split(full.y, 500, seed=0, num_classes=10)
    assert len(set(tr.tolist()) & set(va.tolist())) == 0
    assert sorted(tr.tolist() + va.tolist()) == list(range(5000))
    # load_dataset uses exactly this split: val is a subset of training images, not test.
    assert torch.equal(default.val.x, full.x[va]) and torch.equal(default.train.x, full.x[tr])
    # Deterministic in the seed, different across seeds.
    assert torch.equal(stratified_split(full.y, 500, seed=0)[1], va)
    assert not torch.equal(stratified_split(full.y, 500, seed=1)[1], va)


def test_train_subset_and_fixed_subset_balanced(default: DatasetSplits) -> None:
    sub = load_dataset("default", train_subset=1000, val_size=500, seed=3)
    assert len(sub.train) == 1000 and sub.train.class_counts().tolist() == [100] * 10
    assert len(sub.val) == 500  # the val split does not depend on train_subset
    again = load_dataset("default", train_subset=1000, val_size=500, seed=3)
    assert torch.equal(sub.train.x, again.train.x)

    fs = fixed_subset(default.test, 205, seed=1)
    counts = fs.class_counts().tolist()
    assert sum(counts) == 205 and max(counts) - min(counts) <= 1
    assert torch.equal(fs.x, fixed_subset(default.test, 205, seed=1).x)
    assert fixed_subset(default.test, 10_000) is default.test


def test_bad_val_size() -> None:
    with pytest.raises(DataError, match="val_size"):
        load_dataset("default", val_size=5000)
    with pytest.raises(DataError, match="val_size"):
        load_dataset("default", val_size=-1)


def test_val_split_holds_out_exactly_val_size_images() -> None:
    ds = load_dataset("default", val_size=500, seed=3)
    assert len(ds.val) == 500 and len(ds.train) == 4500
    assert ds.val.class_counts().tolist() == [50] * 10
    odd = load_dataset("default", val_size=205, seed=3)
    counts = odd.val.class_counts().tolist()
    assert sum(counts) == 205 and max(counts) - min(counts) <= 1 and len(odd.train) == 4795


# ----------------------------------------------------------------------------------------
# Augmentation
# ----------------------------------------------------------------------------------------


def _reference_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Slow per-image RandomCrop(padding=4) + RandomHorizontalFlip with augment()'s
    documented draw order: all row offsets, all column offsets, then all flips."""
    n, _, h, w = x.shape
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        padded = torch.zeros(x.shape[1], h + 8, w + 8, dtype=x.dtype)
        padded[:, 4:4 + h, 4:4 + w] = x[i]
        crop = padded[:, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def _candidates(img: torch.Tensor) -> list[torch.Tensor]:
    """All 9 x 9 x 2 crops/flips the paper's augmentation can produce from ``img``."""
    c, h, w = img.shape
    padded = torch.zeros(c, h + 8, w + 8, dtype=img.dtype)
    padded[:, 4:4 + h, 4:4 + w] = img
    crops = [padded[:, a:a + h, b:b + w] for a in range(9) for b in range(9)]
    return crops + [cr.flip(-1) for cr in crops]


def test_augment_shape_range_and_reproducibility() -> None:
    x = _rand_images(32)
    a = augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.dtype == x.dtype and a.is_contiguous()
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, x)
    assert (a == 0).any()  # padding shows up for non-zero offsets
    # Global-RNG path works and follows torch.manual_seed.
    torch.manual_seed(5)
    g1 = augment(x)
    torch.manual_seed(5)
    assert torch.equal(g1, augment(x))


def test_augment_matches_slow_reference() -> None:
    x = _rand_images(12, h=32, w=28, seed=1)  # non-square catches swapped H/W
    fast = augment(x, torch.Generator().manual_seed(42))
    slow = _reference_augment(x, torch.Generator().manual_seed(42))
    assert torch.equal(fast, slow)


def test_augment_is_translation_plus_flip() -> None:
    # Independent of the draw order: each output must be one of the 162 legal crops.
    x = _rand_images(64, seed=2)
    out = augment(x, torch.Generator().manual_seed(7))
    hits = []
    for i in range(len(x)):
        matches = [k for k, cand in enumerate(_candidates(x[i])) if torch.equal(cand, out[i])]
        assert len(matches) == 1, f"image {i}: output is not a padded crop (+flip) of the input"
        hits.append(matches[0])
    flipped = sum(k >= 81 for k in hits)
    offsets = {k % 81 for k in hits}
    assert 10 <= flipped <= 54  # ~half flipped
    assert len(offsets) > 20  # many different offsets used


def test_augment_uint8_and_empty() -> None:
    x = (torch.rand(4, 3, 8, 8) * 255).to(torch.uint8)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert augment(torch.zeros(0, 3, 8, 8)).shape == (0, 3, 8, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_cpu() -> None:
    x = _rand_images(16)
    cpu = augment(x, torch.Generator().manual_seed(3))
    gpu = augment(x.cuda(), torch.Generator().manual_seed(3))  # CPU generator, CUDA data
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
    g = torch.Generator(device="cuda").manual_seed(3)
    assert augment(x.cuda(), g).is_cuda


# ----------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------


def _small(n: int = 50) -> ImageData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    return ImageData(x, torch.arange(n) % 5, [f"c{i}" for i in range(5)])


def test_batch_iterator_covers_epoch() -> None:
    data = _small(50)
    it = BatchIterator(data, 16, shuffle=False, augment=False, drop_last=False, seed=0, device="cpu")
    assert len(it) == 4
    batches = list(it.epoch_batches(0))
    assert [len(b[1]) for b in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([b[0] for b in batches]), to_float(data.x))
    assert len(BatchIterator(data, 16, shuffle=True, augment=False, drop_last=True, seed=0,
                             device="cpu")) == 3


def test_batch_iterator_order_depends_on_seed_and_epoch() -> None:
    data = _small(50)

    def order(seed: int, epoch: int) -> list[int]:
        it = BatchIterator(data, 16, shuffle=True, augment=False, drop_last=True, seed=seed, device="cpu")
        return [float(v) for b in it.epoch_batches(epoch) for v in b[0][:, 0, 0, 0]]

    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2)
    assert order(0, 1) != order(1, 1)
    it = BatchIterator(data, 16, shuffle=True, augment=False, drop_last=False, seed=0, device="cpu")
    assert sorted(it.epoch_order(3).tolist()) == list(range(50))


def test_batch_iterator_resume_mid_epoch() -> None:
    data = _small(50)
    it = BatchIterator(data, 8, shuffle=True, augment=True, drop_last=False, seed=11, device="cpu")
    gen = torch.Generator().manual_seed(123)
    k = 3
    full, state_at_k = [], None
    for b, batch in enumerate(it.epoch_batches(2, generator=gen)):
        full.append(batch)
        if b == k - 1:
            state_at_k = gen.get_state()  # what a checkpoint after batch k-1 would save
    resumed_gen = torch.Generator()
    resumed_gen.set_state(state_at_k)
    tail = list(it.epoch_batches(2, start_batch=k, generator=resumed_gen))
    assert len(tail) == len(it) - k
    for (xa, ya), (xb, yb) in zip(full[k:], tail):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert list(it.epoch_batches(2, start_batch=len(it))) == []
    with pytest.raises(ValueError):
        next(it.epoch_batches(2, start_batch=len(it) + 1))


# ----------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------


def test_unknown_source() -> None:
    with pytest.raises(DataError) as e:
        load_dataset("imagenet-22k")
    for s in SOURCES:
        assert s in str(e.value)


@pytest.mark.parametrize("source", ["folder", "cifar10-archive"])
def test_missing_path(tmp_path: Path, source: str) -> None:
    missing = tmp_path / "nope" / "data.tar.gz"
    with pytest.raises(DataError, match="dataset path not found") as e:
        load_dataset(source, str(missing), cache_dir=str(tmp_path / "cache"))
    assert str(missing) in str(e.value)


def test_archive_needs_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(D.ARCHIVE_ENV, raising=False)
    with pytest.raises(DataError, match=D.ARCHIVE_ENV):
        load_dataset("cifar10-archive")


@pytest.mark.parametrize("exists", [True, False])
def test_torchvision_cifar10_absent_without_download(tmp_path: Path, exists: bool) -> None:
    root = tmp_path / "tv"
    if exists:
        root.mkdir()
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", str(root), download=False)
    msg = str(e.value)
    assert "CIFAR-10 not found" in msg and str(root) in msg and "--download" in msg
    assert "\n" not in msg
    # No chained torchvision traceback.
    assert e.value.__cause__ is None
    assert e.value.__context__ is None or e.value.__suppress_context__


def test_torchvision_download_failure_is_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    import torchvision

    class Offline:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", Offline)
    with pytest.raises(DataError, match="CIFAR-100 not found.*download failed") as e:
        load_dataset("cifar100", str(tmp_path / "tv"), download=True)
    assert e.value.__suppress_context__ and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------
# Folder source
# ----------------------------------------------------------------------------------------


def _write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _make_folder(root: Path, n_per_class: int = 4, size: int = 16, test_dir: str = "test") -> dict:
    rng = np.random.default_rng(0)
    written: dict[tuple[str, str, int], np.ndarray] = {}
    for split, n in (("train", n_per_class), (test_dir, 2)):
        for cls in ("dog", "cat", "bird"):
            for i in range(n):
                arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                _write_png(root / split / cls / f"{i:03d}.png", arr)
                written[(split, cls, i)] = arr
    return written


def test_folder_source(tmp_path: Path) -> None:
    written = _make_folder(tmp_path / "ds")
    (tmp_path / "ds" / "train" / "cat" / "notes.txt").write_text("not an image")
    ds = load_dataset("folder", str(tmp_path / "ds"), val_size=3)
    assert ds.name == "ds" and ds.classes == ["bird", "cat", "dog"]
    assert ds.image_size == (16, 16)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (9, 3, 6)
    assert ds.val.class_counts().tolist() == [1, 1, 1]
    # PNG is lossless: the first test image (bird/000) round-trips exactly, in CHW layout.
    assert torch.equal(ds.test.x[0], torch.from_numpy(written[("test", "bird", 0)]).permute(2, 0, 1))
    assert ds.test.y.tolist() == [0, 0, 1, 1, 2, 2]


def test_folder_val_fallback_grayscale_and_resize(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "ds"
    _make_folder(root, test_dir="val")
    Image.fromarray(np.full((16, 16), 77, np.uint8), mode="L").save(root / "train" / "dog" / "gray.png")
    _write_png(root / "train" / "cat" / "big.png", np.zeros((20, 24, 3), np.uint8))
    with caplog.at_level(logging.WARNING, logger="ciard.data"):
        ds = load_dataset("folder", str(root))
    assert len(ds.train) == 14 and len(ds.test) == 6 and ds.image_size == (16, 16)
    assert "resizing" in caplog.text
    gray = ds.train.x[ds.train.y == 2][-1]  # "gray.png" sorts after "003.png" in dog
    assert gray.shape == (3, 16, 16) and int(gray.min()) == int(gray.max()) == 77


def test_folder_tiny_imagenet_layout(tmp_path: Path) -> None:
    root = tmp_path / "tiny-imagenet-200"
    rng = np.random.default_rng(1)
    wnids = ["n01443537", "n01629819"]
    for w in wnids:
        for i in range(3):
            _write_png(root / "train" / w / "images" / f"{w}_{i}.JPEG".replace(".JPEG", ".png"),
                       rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    lines = []
    for i in range(4):
        _write_png(root / "val" / "images" / f"val_{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        lines.append(f"val_{i}.png\t{wnids[i % 2]}\t0\t0\t7\t7")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    _write_png(root / "test" / "images" / "test_0.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    ds = load_dataset("folder", str(root))
    assert ds.classes == wnids
    assert len(ds.train) == 6 and len(ds.test) == 4  # unlabelled test/ skipped for val/
    assert ds.test.y.tolist() == [0, 1, 0, 1]


def test_folder_corrupt_image_names_file(tmp_path: Path) -> None:
    _make_folder(tmp_path / "ds")
    bad = tmp_path / "ds" / "train" / "dog" / "002.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="002.png") as e:
        load_dataset("folder", str(tmp_path / "ds"))
    assert str(bad) in str(e.value)


# ----------------------------------------------------------------------------------------
# Archive source (tiny archives built from the embedded default zip)
# ----------------------------------------------------------------------------------------


def _default_jpegs(per_class: int = 3) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with zipfile.ZipFile(D.DEFAULT_ASSET) as zf:
        names = sorted(zf.namelist())
        for split in ("train", "test"):
            for cls in ("airplane", "cat", "truck"):
                picked = [n for n in names if n.startswith(f"{split}/{cls}/")][:per_class]
                out.update({n: zf.read(n) for n in picked})
    return out


def _write_tar(path: Path, files: dict[str, bytes], prefix: str = "cifar10/") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, payload in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return path


def test_archive_source_decodes_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _default_jpegs()
    archive = _write_tar(tmp_path / "mini.tar.gz", files)
    cache = tmp_path / "cache"
    ds = load_dataset("cifar10-archive", str(archive), cache_dir=str(cache))
    assert ds.classes == ["airplane", "cat", "truck"]
    assert (len(ds.train), len(ds.test)) == (9, 9) and ds.image_size == (32, 32)
    expected = np.array(Image.open(io.BytesIO(files["test/cat/" + sorted(
        n.split("/")[-1] for n in files if n.startswith("test/cat/"))[0]])).convert("RGB"))
    assert torch.equal(ds.test.x[3], torch.from_numpy(expected).permute(2, 0, 1))
    assert len(list(cache.glob("*.npz"))) == 1

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("second load should come from the cache")

    monkeypatch.setattr(D, "_decode_archive", no_decode)
    monkeypatch.setenv(D.ARCHIVE_ENV, str(archive))  # path from the environment this time
    again = load_dataset("cifar10-archive", cache_dir=str(cache))
    assert torch.equal(again.train.x, ds.train.x) and torch.equal(again.test.y, ds.test.y)
    assert again.classes == ds.classes


def test_archive_zip_without_prefix(tmp_path: Path) -> None:
    archive = tmp_path / "mini.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, payload in _default_jpegs(2).items():
            zf.writestr(name, payload)
        zf.writestr("__MACOSX/train/cat/._0000.jpg", b"junk")
    ds = load_dataset("cifar10-archive", str(archive), cache_dir=str(tmp_path / "c"))
    assert (len(ds.train), len(ds.test), ds.num_classes) == (6, 6, 3)


def test_archive_corrupt(tmp_path: Path) -> None:
    good = _write_tar(tmp_path / "good.tar.gz", _default_jpegs(1))
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated.tar.gz"):
        load_dataset("cifar10-archive", str(truncated), cache_dir=str(tmp_path / "c"))
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"definitely not an archive" * 10)
    with pytest.raises(DataError, match="garbage.tar.gz"):
        load_dataset("cifar10-archive", str(garbage), cache_dir=str(tmp_path / "c"))
    files = _default_jpegs(1)
    files["train/cat/bad.jpg"] = b"\xff\xd8\xff\xe0 not really a jpeg"
    bad_img = _write_tar(tmp_path / "badimg.tar.gz", files)
    with pytest.raises(DataError, match="train/cat/bad.jpg"):
        load_dataset("cifar10-archive", str(bad_img), cache_dir=str(tmp_path / "c"))


@pytest.mark.slow
@pytest.mark.skipif(not FULL_ARCHIVE.is_file(), reason=f"full CIFAR-10 archive not at {FULL_ARCHIVE}")
def test_full_cifar10_archive(tmp_path: Path) -> None:
    ds = load_dataset("cifar10-archive", str(FULL_ARCHIVE), cache_dir=str(tmp_path))
    assert (len(ds.train), len(ds.test), ds.num_classes) == (50000, 10000, 10)
    assert ds.train.class_counts().tolist() == [5000] * 10
    assert ds.test.class_counts().tolist() == [1000] * 10
    cached = load_dataset("cifar10-archive", str(FULL_ARCHIVE), val_size=1000, cache_dir=str(tmp_path))
    assert (len(cached.train), len(cached.val), len(cached.test)) == (49000, 1000, 10000)
    assert cached.val.class_counts().tolist() == [100] * 10
