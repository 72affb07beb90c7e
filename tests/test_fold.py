"""BatchNorm folding computes the eval-mode function of the original, and follows it as it trains."""
import pytest
import torch

from ciard.fold import FoldedEval
from ciard.models import MODEL_NAMES, build_model


def _randomise_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n not in ("wrn-28-10", "wrn-34-10")])
def test_folded_matches_eval_model_values_and_input_gradients(name):
    torch.manual_seed(0)
    model = build_model(name)
    _randomise_bn(model)
    model.eval().double()   # float64: folding is exact algebra, so agreement must be tight
    folded = FoldedEval(model)
    if name.startswith(("resnet", "mobilenet", "smallcnn")):
        assert folded.folded > 0
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    ref = model(x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    out = folded(x2)
    (g_out,) = torch.autograd.grad(out.sum(), x2)
    assert torch.allclose(out, ref, atol=1e-9, rtol=1e-9)
    assert (g_out - g_ref).norm() <= 1e-9 * g_ref.norm()


def test_refresh_follows_a_training_model_and_leaves_it_alone():
    torch.manual_seed(0)
    model = build_model("resnet20").to(memory_format=torch.channels_last)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = FoldedEval(model)
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # train a step (weights and BN statistics change), then refresh
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.rand(8, 3, 32, 32)).logsumexp(1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        stale = folded(x)
        fresh = folded.refresh()(x)
        ref = model(x)
    assert not torch.allclose(stale, ref, atol=1e-4)
    assert torch.allclose(fresh, ref, atol=1e-4, rtol=1e-4)


def test_compiled_view_follows_refresh():
    """The trainer compiles the attack's folded view: it must see refreshed weights, not
    constants baked in at compile time (that would silently weaken the training attack)."""
    torch.manual_seed(0)
    model = build_model("smallcnn")
    view = FoldedEval(model)
    compiled = torch.compile(view, dynamic=False)
    x = torch.rand(8, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        compiled(x)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    model(torch.rand(16, 3, 32, 32)).logsumexp(1).mean().backward()
    opt.step()
    model.eval()
    view.refresh()
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name", ["wrn-10-1", "resnet20"])
def test_view_is_pinned_to_eval_mode_and_never_switches_the_original(name):
    """A pre-activation WRN keeps unfolded BatchNorms in the view. The view must compute the
    eval function even while the original is in train mode, and switching the view (as an
    evaluation's ``model.train(was)`` did) must not switch the original's shared modules."""
    torch.manual_seed(0)
    model = build_model(name)
    _randomise_bn(model)
    view = FoldedEval(model)
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        ref = model(x)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        out = view(x)
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)
    for k, v in model.state_dict().items():   # no running-statistics update through the view
        assert torch.equal(v, state[k]), k
    assert not view.training
    view.train()
    assert not view.training and all(m.training for m in model.modules())
    model.eval()
    view.train(True)
    assert not any(m.training for m in model.modules())
