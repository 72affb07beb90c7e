"""CIARD's parts: the push-loss mask and scale, temperatures, weights, ITT, frozen clean teacher."""
import math

import pytest
import torch

from ciard.config import Config
from ciard.losses import kd_reference, power_of_ten_scale, soft
from ciard.methods import build_method
from ciard.models import build_model
from ciard.schedules import cosine_exp, eta_decay, itt_lr, student_lr


def _cfg(**kw):
    base = dict(method="ciard", student="smallcnn", pgd_steps=2, pgd_step_size=4 / 255,
                epochs=6, itt_lr=0.05, itt_warmup=0.5)
    base.update(kw)
    return Config().override(**base)


def _models(seed=0):
    torch.manual_seed(seed)
    return build_model("smallcnn"), {"clean": build_model("smallcnn"), "robust": build_model("smallcnn")}


def test_kd_reference_matches_the_formula():
    torch.manual_seed(0)
    t, s = torch.randn(4, 10), torch.randn(4, 10)
    p, log_q = torch.softmax(t, 1), torch.log_softmax(s, 1)
    expected = (p * (torch.log(p + 1e-5) - log_q)).mean()  # mean over batch AND classes
    assert torch.allclose(kd_reference(p, s), expected)


def test_push_mask_counts_only_fooled_samples():
    torch.manual_seed(0)
    p, s = torch.softmax(torch.randn(6, 10), 1), torch.randn(6, 10)
    mask = torch.tensor([True, False, True, False, False, False])
    per = (p * (torch.log(p + 1e-5) - torch.log_softmax(s, 1))).sum(1) / 10
    assert torch.allclose(kd_reference(p, s, mask), per[mask].mean())
    # moving one logit of an unmasked sample leaves the loss alone; of a masked one, changes it
    # (one logit, not the whole row: a constant added to a row leaves its softmax unchanged)
    unmasked, masked = s.clone(), s.clone()
    unmasked[1, 3] += 5.0
    masked[2, 3] += 5.0
    assert torch.allclose(kd_reference(p, unmasked, mask), kd_reference(p, s, mask))
    assert not torch.allclose(kd_reference(p, masked, mask), kd_reference(p, s, mask))
    # no fooled sample -> exactly zero, and the scale factor is zero too
    empty = torch.zeros(6, dtype=torch.bool)
    zero = kd_reference(p, s, empty)
    assert zero.item() == 0.0
    assert power_of_ten_scale(torch.tensor(0.3), torch.tensor(0.05), zero).item() == 0.0


def test_power_of_ten_scale():
    s = power_of_ten_scale(torch.tensor(0.0312), torch.tensor(0.0048), torch.tensor(0.00071))
    # min(floor(log10 .0312)=-2, floor(log10 .0048)=-3) - floor(log10 .00071)=-4 -> 10^1
    assert math.isclose(s.item(), 10.0)
    assert power_of_ten_scale(torch.tensor(0.5), torch.tensor(0.5), torch.tensor(float("nan"))).item() == 0.0


class _ScriptedCleanTeacher(torch.nn.Module):
    """A clean teacher whose logits are given: right on every clean image, and on the
    adversarial half right except on ``fooled`` (there it predicts y + 1). CIARD runs the
    clean teacher on [x; x'] in one pass, so rows B.. are x'."""

    def __init__(self, y, fooled):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        n = len(y)
        base = torch.randn(2 * n, 10, generator=g)
        labels = torch.cat([y, torch.where(fooled, (y + 1) % 10, y)])
        self.logits = base + 8.0 * torch.nn.functional.one_hot(labels, 10)

    def forward(self, xx):
        assert len(xx) == len(self.logits)
        return self.logits.clone()


@pytest.mark.parametrize("fooled_idx", [[1, 4, 5, 11], []])
def test_push_loss_uses_exactly_the_samples_where_the_clean_teacher_is_fooled_on_x_adv(batch, fooled_idx):
    """The push mask is argmax N(x') != y: the push loss must equal the masked KL over exactly
    the scripted subset, and differ from the same KL over all samples, over the others, or
    over the samples where N(x) (clean) is wrong (none)."""
    x, y = batch
    x, y = x[:16], y[:16]
    fooled = torch.zeros(16, dtype=torch.bool)
    fooled[fooled_idx] = True
    student, teachers = _models()
    method = build_method(_cfg(itt=False, adaptive_temp=False), student, teachers)
    method.clean = _ScriptedCleanTeacher(y, fooled)
    torch.manual_seed(0)
    out = method.compute(x, y, progress=0.0)
    s_adv = out.logits.detach()
    p = torch.softmax(method.clean.logits[16:], 1)
    per = (p * (torch.log(p + 1e-5) - torch.log_softmax(s_adv / 5.0, 1))).mean(1)  # T_push = 5
    push = out.metrics["loss_push"]
    assert out.metrics["push_fraction"].item() == pytest.approx(len(fooled_idx) / 16)
    if not fooled_idx:
        assert push.item() == 0.0 and out.metrics["push_scale"].item() == 0.0
        return
    assert push.item() == pytest.approx(per[fooled].mean().item(), rel=1e-5)
    for wrong in (per.mean(), per[~fooled].mean()):
        assert push.item() != pytest.approx(wrong.item(), rel=1e-3)
    # and it enters the loss with a minus sign, scaled by s
    expected = out.metrics["w_adv"] * out.metrics["loss_adv"] + out.metrics["w_nat"] * out.metrics["loss_nat"] \
        - 1.0 * out.metrics["push_scale"] * push
    assert out.metrics["push_scale"].item() > 0
    assert torch.allclose(out.loss.detach(), expected, atol=1e-6)


def test_temperatures_move_against_the_entropy_gap_and_stay_clipped():
    student, teachers = _models()
    m = build_method(_cfg(temp_lr=0.5), student, teachers)
    sharp = soft(torch.tensor([[8.0] + [0.0] * 9] * 4))      # low entropy
    flat = soft(torch.tensor([[0.5] + [0.0] * 9] * 4))       # high entropy
    # robust teacher flatter than the clean one: |H_adv| > |H_nat| -> H_adv/H_nat > 1
    m.tau_adv, m.tau_nat = torch.tensor(3.0), torch.tensor(3.0)
    m.update_temperatures(flat, sharp, eta=0.5)
    assert m.tau_adv.item() == pytest.approx(2.5) and m.tau_nat.item() == pytest.approx(3.5)
    for _ in range(50):
        m.update_temperatures(flat, sharp, eta=0.5)
    assert m.tau_adv.item() == 1.0 and m.tau_nat.item() == 10.0   # clipped to [1, 10]
    m.update_temperatures(sharp, flat, eta=0.5)
    assert m.tau_adv.item() == 1.5 and m.tau_nat.item() == 9.5


def test_adaptive_weights_shift_towards_the_slower_loss():
    student, teachers = _models()
    m = build_method(_cfg(adaptive_weights=True), student, teachers)
    assert m.w_adv.item() == 0.5 and m.w_nat.item() == 0.5
    m.update_weights(torch.tensor(1.0), torch.tensor(1.0), eta=0.025)   # first step sets L(0)
    m.update_weights(torch.tensor(0.9), torch.tensor(0.3), eta=0.025)   # nat fell faster
    assert m.w_adv.item() > 0.5 > m.w_nat.item()
    assert m.w_adv.item() + m.w_nat.item() == pytest.approx(1.0)


def test_neg_entropy_uses_the_official_epsilon():
    from ciard.losses import neg_entropy
    p = torch.softmax(torch.tensor([[9.0, 0.0, -3.0, 1.0], [0.0, 0.0, 0.0, 12.0]]), 1)
    expected = (torch.log(p + 1e-5) * p).mean()   # entropy_value in B-MTARD's and CIARD's code
    assert neg_entropy(p).item() == pytest.approx(expected.item(), rel=1e-6)
    assert neg_entropy(p).item() != pytest.approx((p * torch.log(p)).mean().item(), rel=1e-6)


def test_adaptive_weights_move_before_they_form_their_steps_loss(batch):
    """B-MTARD's official order: the step's own KD losses update the weights, then the new
    weights form that step's loss (not the next one's)."""
    x, y = batch
    student, teachers = _models()
    m = build_method(_cfg(itt=False, push_weight=0.0, adaptive_weights=True, adaptive_temp=False),
                     student, teachers)
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    w, first = torch.tensor([0.5, 0.5]), None
    for step in range(3):
        torch.manual_seed(step)
        out = m.compute(x, y, progress=0.0)
        losses = torch.stack([out.metrics["loss_adv"], out.metrics["loss_nat"]])
        first = losses if first is None else first
        rel = losses / first
        r = rel / rel.mean()
        w = (w - 0.025 * (w - r / r.sum())).clamp_min(0)
        w = w / w.sum()
        assert out.metrics["w_adv"].item() == pytest.approx(w[0].item(), rel=1e-6)
        assert out.metrics["w_nat"].item() == pytest.approx(w[1].item(), rel=1e-6)
        assert out.loss.item() == pytest.approx((w * losses).sum().item(), rel=1e-5)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        m.after_step(out, y, 0.0)
    assert w[0].item() != pytest.approx(0.5, abs=1e-6)   # the weights did move


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _run_steps(method, student, x, y, progresses):
    opt = torch.optim.SGD(student.parameters(), lr=0.01)
    for prog in progresses:
        out = method.compute(x, y, prog)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        method.after_step(out, y, prog)


def test_itt_only_when_enabled_and_after_warmup_clean_teacher_never_changes(batch):
    x, y = batch
    student, teachers = _models()
    clean_state = {k: v.clone() for k, v in teachers["clean"].state_dict().items()}
    robust_before = _params(teachers["robust"])
    method = build_method(_cfg(itt=True, itt_warmup=0.5), student, teachers)
    _run_steps(method, student, x, y, [0.0, 0.2, 0.4])            # inside the warm-up
    assert _same(robust_before, _params(teachers["robust"]))
    _run_steps(method, student, x, y, [0.6])                       # after it
    assert not _same(robust_before, _params(teachers["robust"]))
    for k, v in teachers["clean"].state_dict().items():            # N: weights and buffers
        assert torch.equal(v, clean_state[k]), k

    student, teachers = _models()
    robust_state = {k: v.clone() for k, v in teachers["robust"].state_dict().items()}
    method = build_method(_cfg(itt=False), student, teachers)
    _run_steps(method, student, x, y, [0.6, 0.9])
    for k, v in teachers["robust"].state_dict().items():           # frozen means frozen
        assert torch.equal(v, robust_state[k]), k


def test_schedules():
    assert student_lr(0.1, 0.3) == 0.1
    assert student_lr(0.1, 0.5) == pytest.approx(0.1)
    assert student_lr(0.1, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert 0 < student_lr(0.1, 0.75) < 0.1
    assert itt_lr(1e-4, 0.1, 1 / 6) == 0.0
    assert itt_lr(1e-4, 1 / 6, 1 / 6) == pytest.approx(1e-4)
    assert cosine_exp(0.0) == 1.0
    assert eta_decay(0.5) == 1.0 and eta_decay(0.9) == pytest.approx(0.01) and eta_decay(1.0) == pytest.approx(0.001)
