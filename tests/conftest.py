"""Shared pytest configuration."""


def pytest_configure(config):
    # Tests that need large external data or long runtimes; deselect with -m "not slow".
    config.addinivalue_line("markers", "slow: long-running or needs external data (deselect with -m 'not slow')")


# -- shared fixtures ------------------------------------------------------------------
import pytest
import torch


@pytest.fixture(scope="session")
def default_data():
    """The embedded default dataset (5,000 train + 1,000 test CIFAR-10 images)."""
    from ciard.data import load_dataset
    return load_dataset("default", val_size=500, seed=0)


@pytest.fixture(scope="session")
def batch(default_data):
    """A fixed float batch of 32 training images in [0, 1] and their labels."""
    from ciard.data import fixed_subset, to_float
    sub = fixed_subset(default_data.train, 32, seed=0)
    return to_float(sub.x), sub.y


@pytest.fixture(scope="session")
def trained_cnn(default_data):
    """A smallcnn trained naturally for a few epochs: accurate enough that attacks matter."""
    from ciard.data import BatchIterator
    from ciard.models import build_model
    torch.manual_seed(0)
    model = build_model("smallcnn")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    it = BatchIterator(default_data.train, 128, shuffle=True, augment=False, drop_last=True,
                       seed=0, device="cpu")
    model.train()
    for epoch in range(3):
        for x, y in it.epoch_batches(epoch):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def teacher_ckpts(tmp_path_factory, trained_cnn):
    """Clean and robust teacher checkpoints (small, untrained-ish but valid) for trainer tests."""
    from ciard import checkpoints
    from ciard.models import build_model
    d = tmp_path_factory.mktemp("teachers")
    clean = checkpoints.save_model(trained_cnn, d / "clean.pt")
    torch.manual_seed(1)
    robust = checkpoints.save_model(build_model("smallcnn"), d / "robust.pt")
    return str(clean), str(robust)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """An empty run store, which the app (``CIARD_RUNS_DIR``) uses instead of ``runs/``."""
    d = tmp_path / "runs"
    d.mkdir()
    monkeypatch.setenv("CIARD_RUNS_DIR", str(d))
    return d


# -- the browser tests' Chromium (see tests/browser_support.py) -------------------------------------
@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per browser-test module; each test opens its own page (session)."""
    from browser_support import chromium
    from playwright.sync_api import expect
    expect.set_options(timeout=30_000)      # Playwright's 5 s is short for a loaded 2-core machine
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    """A fresh 1400 x 1000 page, closed after the test."""
    from browser_support import new_page
    p = new_page(browser)
    yield p
    p.close()
