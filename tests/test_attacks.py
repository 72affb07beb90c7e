"""Attack invariants: eps ball, image range, model state untouched, strength ordering."""
import pytest
import torch

from ciard.attacks import APGD, FGSM, PGD, AutoAttack, CWInf, Square, make_attack
from ciard.evaluate import robust_correct

EPS = 8 / 255


def _check_ball(x, x_adv, eps=EPS):
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


ATTACKS = [
    lambda: FGSM(EPS),
    lambda: PGD(EPS, 5, 2 / 255, start="uniform"),
    lambda: PGD(EPS, 5, 2 / 255, start="normal"),
    lambda: CWInf(EPS, 5, 2 / 255),
    lambda: APGD(EPS, steps=3),
    lambda: Square(EPS, queries=10),
    lambda: AutoAttack(EPS, steps=2, queries=5),
]


@pytest.mark.parametrize("make", ATTACKS, ids=["fgsm", "pgd-u", "pgd-n", "cw", "apgd", "square", "aa"])
def test_eps_ball_range_and_state_restored(make, trained_cnn, batch):
    x, y = batch
    x, y = x[:16], y[:16]
    model = trained_cnn
    # a mixed state: train mode at the top, one submodule in eval, one parameter frozen,
    # and gradients already present that the attack must not touch
    model.train()
    first_bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    first_bn.eval()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    for p in params[1:]:
        p.grad = torch.full_like(p, 0.5)
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        x_adv = make()(model, x, y)
        _check_ball(x, x_adv)
        assert [m.training for m in model.modules()] == modes
        assert params[0].requires_grad is False and all(p.requires_grad for p in params[1:])
        assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in params[1:])
        # BN running statistics unchanged: the attack ran in eval mode
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k
    finally:
        for p in params:
            p.requires_grad_(True)
            p.grad = None
        model.eval()


def test_channels_last_input_works_for_autoattack(trained_cnn, batch):
    x, y = batch
    x = x[:8].contiguous(memory_format=torch.channels_last)
    x_adv = AutoAttack(EPS, steps=2, queries=5)(trained_cnn, x, y[:8])
    _check_ball(x, x_adv)


def test_attacks_reduce_accuracy_and_stronger_is_not_weaker(trained_cnn, default_data):
    from ciard.data import fixed_subset, to_float
    sub = fixed_subset(default_data.test, 200, seed=0)
    x, y = to_float(sub.x), sub.y
    torch.manual_seed(0)
    acc = lambda atk: robust_correct(trained_cnn, x, y, atk).float().mean().item()  # noqa: E731
    clean = acc(None)
    fgsm = acc(FGSM(EPS))
    pgd_small = acc(PGD(1 / 255, 10, 0.5 / 255))
    pgd = acc(PGD(EPS, 10, 2 / 255))
    assert clean > 0.35, "the fixture model should have learned something"
    assert clean >= pgd_small >= pgd
    assert clean > fgsm >= pgd
    assert pgd < 0.5 * clean  # a naturally trained model is not robust at 8/255
    # the samples PGD leaves correct are a subset of the clean-correct ones
    mask_pgd = robust_correct(trained_cnn, x, y, PGD(EPS, 10, 2 / 255))
    assert not (mask_pgd & ~robust_correct(trained_cnn, x, y, None)).any()


def test_pgd_kl_needs_target_and_moves_away(trained_cnn, batch):
    x, y = batch
    with pytest.raises(ValueError):
        PGD(EPS, 2, 2 / 255, loss="kl")(trained_cnn, x, y)
    with torch.no_grad():
        p = torch.softmax(trained_cnn(x), 1)
    x_adv = PGD(EPS, 5, 2 / 255, loss="kl", start="normal")(trained_cnn, x, y, target_probs=p)
    _check_ball(x, x_adv)
    with torch.no_grad():
        q = torch.log_softmax(trained_cnn(x_adv), 1)
    kl = (p * (p.clamp_min(1e-12).log() - q)).sum(1).mean()
    assert kl > 1e-3


def test_make_attack_by_name():
    assert isinstance(make_attack("PGD", eps=EPS), PGD)
    with pytest.raises(ValueError, match="unknown attack 'nope'"):
        make_attack("nope")


def test_cw_inf_starts_from_x_itself(trained_cnn, batch):
    """The official CW-inf (CIARD attack_eval.py) starts from a zero perturbation: its first
    gradient is taken at x, and no random draw enters it."""
    from ciard.attacks import cw_margin
    x, y = batch
    x, y = x[:8], y[:8]
    model = trained_cnn.eval()
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(cw_margin(model(xr), y).sum(), xr)
    expected = (x + 2 / 255 * grad.sign()).clamp(x - EPS, x + EPS).clamp(0, 1)
    torch.manual_seed(0)
    one = CWInf(EPS, steps=1, step_size=2 / 255)(model, x, y)
    assert torch.equal(one, expected)
    torch.manual_seed(1)
    assert torch.equal(CWInf(EPS, steps=3)(model, x, y), CWInf(EPS, steps=3)(model, x, y))


def test_the_cli_knows_the_protocols_attacks_by_name():
    """``eval`` checks attack names against ciard.config's torch-free lists: the same names, order
    and transfer flags as the protocol that runs them."""
    from ciard.config import EVAL_ATTACKS, TRANSFER_ATTACKS
    from ciard.evaluate import protocol
    table = protocol()
    assert tuple(table) == EVAL_ATTACKS
    assert tuple(k for k, a in table.items() if a.transfer) == TRANSFER_ATTACKS


def test_protocol_has_the_papers_100_query_square():
    from ciard.evaluate import protocol
    table = protocol()
    assert table["square"].make(EPS, 0).queries == 5000
    assert table["square100"].make(EPS, 0).queries == 100 and not table["square100"].transfer
    assert table["cw"].make(EPS, 0).start == "none" and table["bb_cw"].make(EPS, 0).start == "none"


def test_an_unfinished_attack_from_other_devices_or_settings_starts_afresh():
    """evaluate() resumes an attack's batches only when the kept state is this attack's, on these
    images and batch size, with a random state for exactly the generators used here."""
    import torch.nn as nn

    from ciard.evaluate import evaluate
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    x = torch.rand(12, 3, 8, 8)
    y = model(x).argmax(1)
    kept = []
    whole = evaluate(model, x, y, ["pgd_sat"], batch_size=4, fold_bn=False, on_batch=kept.append)
    assert [k["done"] for k in kept] == [4, 8]
    seen = []

    def progress(key, done, n):
        seen.append(done)
    good = kept[0]
    for bad in ({**good, "rng": {**good["rng"], "cuda:1": good["rng"]["cpu"]}},   # kept on a GPU
                {**good, "batch_size": 6}, {**good, "key": "pgd_trades"}, {**good, "n": 13}):
        seen.clear()
        evaluate(model, x, y, ["pgd_sat"], batch_size=4, fold_bn=False, unfinished=bad, progress=progress)
        assert seen == [4, 8, 12]
    seen.clear()
    resumed = evaluate(model, x, y, ["pgd_sat"], batch_size=4, fold_bn=False, unfinished=good, progress=progress)
    assert seen == [8, 12] and resumed["pgd_sat"]["mask"] == whole["pgd_sat"]["mask"]
