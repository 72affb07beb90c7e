"""Every shipped checkpoint: present, hash as recorded, loads, runs, and its figures are sane."""
import pytest
import torch

import ciard
from ciard import checkpoints
from ciard.cli import main
from ciard.zoo import read_manifest

ENTRIES = read_manifest()["entries"]


def test_manifest_is_not_empty_and_names_are_unique():
    assert ENTRIES, "checkpoints/manifest.json lists no model"
    assert len({e["name"] for e in ENTRIES}) == len(ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_entry_loads_matches_its_hash_and_runs(entry):
    path = checkpoints.ZOO_DIR / entry["file"]
    assert path.is_file()
    assert checkpoints.sha256(path) == entry["sha256"]
    assert path.stat().st_size < 20 * 2**20
    model = ciard.load_model(f"zoo:{entry['name']}")
    assert model.arch == entry["arch"] and not model.training
    with torch.no_grad():
        out = model(torch.rand(4, 3, 32, 32))
    assert out.shape == (4, entry["num_classes"]) and torch.isfinite(out).all()
    for key in ("role", "dataset", "command", "hardware", "eval_command"):
        assert entry.get(key), key
    acc = entry["evaluation"]["accuracy"]
    # the gradient-masking ordering: PGD <= FGSM <= clean
    assert acc.get("pgd_sat", 0) <= acc.get("fgsm", 1) <= acc["clean"]


def test_auto_teachers_resolve_to_the_zoo_defaults():
    for role in ("clean_teacher", "robust_teacher"):
        path = checkpoints.zoo_default(role, "default")
        assert path is not None and path.is_file()


def test_zoo_command_lists_entries(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for e in ENTRIES:
        assert e["name"] in out
