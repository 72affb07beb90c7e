"""tools/reeval.py: the independent re-evaluation reads the archive itself and judges agreement."""
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import reeval  # noqa: E402


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A CIFAR-10-shaped JPEG archive: 3 test images per class, each a flat grey whose level
    encodes (class, index), and train images that must be ignored."""
    path = tmp_path_factory.mktemp("archive") / "cifar10-jpeg.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for split, per in (("test", 3), ("train", 1)):
            for c, cls in enumerate(reeval.CLASSES):
                for i in reversed(range(per)):   # written out of order: the tool sorts by name
                    buf = io.BytesIO()
                    level = 10 * c + 3 * i + (150 if split == "train" else 0)
                    Image.fromarray(np.full((32, 32, 3), level, np.uint8)).save(buf, "JPEG", quality=95)
                    info = tarfile.TarInfo(f"cifar10/{split}/{cls}/{i:04d}.jpg")
                    info.size = buf.tell()
                    buf.seek(0)
                    tar.addfile(info, buf)
    return path


def test_the_first_images_of_each_class_by_name(archive):
    x, y = reeval.archive_test_images(archive, per_class=2)
    assert x.shape == (20, 3, 32, 32) and y.tolist() == [c for c in range(10) for _ in range(2)]
    levels = (x.mean(dim=(1, 2, 3)) * 255).round().tolist()
    assert levels == pytest.approx([10 * c + 3 * i for c in range(10) for i in range(2)], abs=1)
    with pytest.raises(SystemExit, match="only 3 test images of class airplane"):
        reeval.archive_test_images(archive, per_class=4)


def test_robust_counts_only_images_right_clean_and_attacked(trained_cnn, default_data):
    x = default_data.test.x[:60].float().div(255)
    y = default_data.test.y[:60]
    counts = reeval.measure(trained_cnn, x, y, batch_size=25)
    assert 0 <= counts["pgd_sat"] <= counts["clean"] <= 60 and counts["clean"] > 20
    assert counts["pgd_sat"] < counts["clean"]          # PGD-20 at 8/255 breaks a naturally trained net


def test_the_verdict_follows_the_tolerance(archive, capsys):
    argv = ["demo-clean-resnet20", "--data-path", str(archive), "--per-class", "2", "--json"]
    assert reeval.main(argv + ["--tolerance-clean", "100", "--tolerance-pgd", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["all_agree"] and report["images"] == 20
    assert [r["attack"] for r in report["rows"]] == ["clean", "pgd_sat"]
    clean = report["rows"][0]
    assert clean["diff_points"] == pytest.approx(100 * (clean["reeval"] - clean["manifest"]))
    assert clean["ci95"][0] <= clean["reeval"] <= clean["ci95"][1]
    # flat grey images: the demo teacher's accuracy on them is far from its manifest figure
    assert reeval.main(argv + ["--tolerance-clean", "0.5"]) == 1
    assert not json.loads(capsys.readouterr().out)["all_agree"]
    with pytest.raises(SystemExit, match="no zoo entry named nope"):
        reeval.main(["nope", "--data-path", str(archive)])
