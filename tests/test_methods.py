"""Every method, on a tiny fixed batch, lowers its own loss."""
import pytest
import torch

from ciard.config import METHODS, TEACHERS_NEEDED, Config
from ciard.methods import METHOD_CLASSES, build_method
from ciard.models import build_model


def test_every_config_method_has_a_class():
    assert set(METHODS) == set(METHOD_CLASSES)


@pytest.mark.parametrize("name", METHODS)
def test_method_decreases_its_loss_on_a_fixed_batch(name, batch, trained_cnn):
    x, y = batch
    cfg = Config().override(method=name, student="smallcnn", pgd_steps=2, pgd_step_size=4 / 255)
    torch.manual_seed(0)
    student = build_model("smallcnn")
    teachers = {}
    for role in TEACHERS_NEEDED.get(name, ()):
        teachers[role] = trained_cnn if role == "clean" else build_model("smallcnn")
    if teachers.get("robust") is not None:
        teachers["robust"].load_state_dict(trained_cnn.state_dict())
    method = build_method(cfg, student, teachers)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)

    def loss_now():
        torch.manual_seed(123)  # same attack start each time: compare like with like
        return method.compute(x, y, progress=0.0).loss.item()

    before = loss_now()
    for i in range(12):
        torch.manual_seed(i)
        out = method.compute(x, y, progress=0.0)
        assert torch.isfinite(out.loss)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        method.after_step(out, y, 0.0)
    after = loss_now()
    assert after < before, f"{name}: loss {before:.4f} -> {after:.4f}"


def test_teachers_needed_matches_each_methods_declared_teachers():
    """config.TEACHERS_NEEDED (what validation and the resolver use) says what each method declares."""
    from ciard.config import METHODS, TEACHERS_NEEDED
    from ciard.methods import METHOD_CLASSES
    assert set(METHOD_CLASSES) == set(METHODS)
    for name, cls in METHOD_CLASSES.items():
        assert tuple(TEACHERS_NEEDED.get(name, ())) == tuple(cls.teachers), name
