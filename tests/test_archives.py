"""Dataset archives are recognised by their first bytes and opened in that one mode; a file
that is no archive is refused at once, and a long decode can be ended by the app."""
import io
import tarfile
import time
import zipfile

import pytest

from ciard import cancel
from ciard import data as D
from ciard.archives import archive_kind
from ciard.data import DataError, load_dataset
from ciard.studio.sidebar import check_data_path


def _jpegs(per_class=2):
    out = {}
    with zipfile.ZipFile(D.DEFAULT_ASSET) as zf:
        names = sorted(zf.namelist())
        for split in ("train", "test"):
            for cls in ("airplane", "cat"):
                for n in [n for n in names if n.startswith(f"{split}/{cls}/")][:per_class]:
                    out[n] = zf.read(n)
    return out


def _tar(path, mode):
    with tarfile.open(path, mode) as tf:
        for name, payload in _jpegs().items():
            info = tarfile.TarInfo("cifar/" + name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture
def zeros_2gb(tmp_path):
    path = tmp_path / "zeros.tar.gz"
    with open(path, "wb") as f:
        f.truncate(2 * 1024 ** 3)   # sparse: 2 GB of zeros that take no disk space
    return path


def test_a_2gb_zero_file_named_tar_gz_is_refused_at_once(tmp_path, zeros_2gb):
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="not an archive: it starts with 512 zero bytes"):
        load_dataset("cifar10-archive", str(zeros_2gb), cache_dir=str(tmp_path / "cache"))
    line = check_data_path("cifar10-archive", str(zeros_2gb))
    assert line and "not an archive" in line
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("contents, message", [
    (b"", "is empty"),
    (b"\x00" * 100 + b"junk", "match none of them"),
    (b"just some text, not an archive\n" * 40, "match none of them"),
])
def test_unknown_headers_are_refused(tmp_path, contents, message):
    path = tmp_path / "x.tar.gz"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match=message):
        archive_kind(path)
    with pytest.raises(DataError, match=message):
        load_dataset("cifar10-archive", str(path), cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize("mode, kind, name", [("w:gz", "gzip", "a.tgz"), ("w:bz2", "bz2", "a.tar.bz2"),
                                              ("w:xz", "xz", "a.tar.xz"), ("w", "tar", "a.tar")])
def test_every_archive_kind_opens_in_its_own_mode(tmp_path, mode, kind, name):
    path = _tar(tmp_path / name, mode)
    assert archive_kind(path) == kind
    ds = load_dataset("cifar10-archive", str(path), cache_dir=str(tmp_path / "c"))
    assert (len(ds.train), len(ds.test), ds.classes) == (4, 4, ["airplane", "cat"])


def test_the_name_does_not_decide_the_kind(tmp_path):
    zipped = tmp_path / "really-a-zip.tar.gz"
    zipped.write_bytes(D.DEFAULT_ASSET.read_bytes())
    assert archive_kind(zipped) == "zip"
    gz = _tar(tmp_path / "really-a-gzip.zip", "w:gz")
    assert archive_kind(gz) == "gzip"


def test_a_long_decode_ends_when_the_page_asks(tmp_path):
    calls = []

    class PageLeft(BaseException):   # what Streamlit's stop/rerun check raises is a BaseException
        pass

    def check():
        calls.append(1)
        if len(calls) > 5:
            raise PageLeft

    path = _tar(tmp_path / "a.tar.gz", "w:gz")
    with cancel.checking(check), pytest.raises(PageLeft):
        load_dataset("cifar10-archive", str(path), cache_dir=str(tmp_path / "c"))
    assert len(calls) == 6
    assert not list((tmp_path / "c").glob("*.npz")), "a cancelled decode writes no cache"
    cancel.poll()   # outside the block nothing is checked
