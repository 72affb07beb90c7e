"""Each baseline's step equals a literal transcription of its official code.

On a fixed batch of real images, the trainer's own step (:func:`ciard.trainer.train_step`:
attack, loss, SGD) and the official training step, transcribed line by line below with the
repository and file it comes from, start from the same student and the same RNG state; their
losses, the student's parameters after the optimiser step and its BatchNorm running
statistics must agree. Changes made only to run the official lines here: ``.cuda()`` dropped,
deprecated ``size_average=False`` / ``reduce=False`` written as their ``reduction=``
equivalents, ``Variable(t, requires_grad=False)`` as ``t.detach()``, names of the harness
(eps, step size, steps) passed in. Both sides use the same SGD settings (the harness's).
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ciard.config import Config
from ciard.methods import build_method
from ciard.models import build_model
from ciard.trainer import train_step

EPS, STEP, STEPS, LR = 8 / 255, 2 / 255, 3, 0.05


def _cfg(method, **kw):
    # plain layout, no folding: the attack sees the very function the official code does
    return Config().override(method=method, student="smallcnn", pgd_steps=STEPS, pgd_step_size=STEP,
                             eps=EPS, precision="fp32", fold_bn=False, channels_last=False, **kw)


def _student(seed=0):
    torch.manual_seed(seed)
    return build_model("smallcnn")


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=2e-4)


def _ours(cfg, student, teachers, x, y, seed):
    method = build_method(cfg, student, teachers)
    opt = _sgd(student)
    torch.manual_seed(seed)
    out, _ = train_step(method, opt, x, y, progress=0.0, lr=LR, channels_last=False)
    return out.loss.detach()


def _assert_same(loss, ref_loss, a, b):
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5, abs=1e-8)
    for (name, t), u in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(t.float(), u.float(), rtol=1e-5, atol=1e-6), name


@pytest.fixture(scope="module")
def robust_teacher(trained_cnn):
    return copy.deepcopy(trained_cnn).eval()


# -- RSLAD --------------------------------------------------------------------------------
def official_rslad_step(student, teacher, train_batch_data, train_batch_labels, optimizer):
    # zibojia/RSLAD, resnet18_rslad_cifar10.py (training loop) and rslad_loss.py (rslad_inner_loss)
    def kl_loss(a, b):
        loss = -a * b + torch.log(b + 1e-5) * b
        return loss

    student.train()
    optimizer.zero_grad()
    with torch.no_grad():
        teacher_logits = teacher(train_batch_data)

    # adv_logits = rslad_inner_loss(student, teacher_logits, ...)
    model, x_natural, step_size, epsilon, perturb_steps = student, train_batch_data, STEP, EPS, STEPS
    criterion_kl = nn.KLDivLoss(reduction="none")
    model.eval()
    x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape).detach()
    for _ in range(perturb_steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = criterion_kl(F.log_softmax(model(x_adv), dim=1),
                                   F.softmax(teacher_logits, dim=1))
            loss_kl = torch.sum(loss_kl)
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    model.train()
    x_adv = torch.clamp(x_adv, 0.0, 1.0).detach()
    optimizer.zero_grad()
    adv_logits = model(x_adv)

    student.train()
    nat_logits = student(train_batch_data)
    kl_Loss1 = kl_loss(F.log_softmax(adv_logits, dim=1), F.softmax(teacher_logits.detach(), dim=1))
    kl_Loss2 = kl_loss(F.log_softmax(nat_logits, dim=1), F.softmax(teacher_logits.detach(), dim=1))
    kl_Loss1 = torch.mean(kl_Loss1)
    kl_Loss2 = torch.mean(kl_Loss2)
    loss = 5 / 6.0 * kl_Loss1 + 1 / 6.0 * kl_Loss2
    loss.backward()
    optimizer.step()
    return loss.detach()


def test_rslad_step_equals_the_official_code(batch, robust_teacher):
    x, y = batch
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    loss = _ours(_cfg("rslad"), ours, {"robust": copy.deepcopy(robust_teacher)}, x, y, seed=7)
    torch.manual_seed(7)
    ref_loss = official_rslad_step(ref, copy.deepcopy(robust_teacher), x, y, _sgd(ref))
    _assert_same(loss, ref_loss, ours, ref)


# -- ARD ----------------------------------------------------------------------------------
def official_ard_step(basic_net, teacher_net, inputs, targets, optimizer, alpha, temp):
    # goldblum/AdversariallyRobustDistillation, main.py (AttackPGD.forward and train())
    KL_loss = nn.KLDivLoss()
    XENT_loss = nn.CrossEntropyLoss()
    config = {"epsilon": EPS, "num_steps": STEPS, "step_size": STEP}

    def net(inputs, targets):   # AttackPGD(basic_net, config).forward
        x = inputs.detach()
        x = x + torch.zeros_like(x).uniform_(-config["epsilon"], config["epsilon"])
        for i in range(config["num_steps"]):
            x.requires_grad_()
            with torch.enable_grad():
                loss = F.cross_entropy(basic_net(x), targets, reduction="sum")
            grad = torch.autograd.grad(loss, [x])[0]
            x = x.detach() + config["step_size"] * torch.sign(grad.detach())
            x = torch.min(torch.max(x, inputs - config["epsilon"]), inputs + config["epsilon"])
            x = torch.clamp(x, 0.0, 1.0)
        return basic_net(x), x

    basic_net.train()   # net.train()
    optimizer.zero_grad()
    outputs, pert_inputs = net(inputs, targets)
    teacher_outputs = teacher_net(inputs)
    basic_outputs = basic_net(inputs)
    loss = alpha * temp * temp * KL_loss(F.log_softmax(outputs / temp, dim=1), F.softmax(teacher_outputs / temp, dim=1)) + (1.0 - alpha) * XENT_loss(basic_outputs, targets)
    loss.backward()
    optimizer.step()
    return loss.detach()


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_ard_step_equals_the_official_code(batch, robust_teacher, alpha):
    """Loss scale (nn.KLDivLoss's element-wise mean, times T^2), the train-mode attack from an
    unclamped uniform start, and the BatchNorm statistics of its passes (the clean pass too)."""
    x, y = batch
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    loss = _ours(_cfg("ard", ard_alpha=alpha), ours, {"robust": copy.deepcopy(robust_teacher)}, x, y, seed=3)
    torch.manual_seed(3)
    ref_loss = official_ard_step(ref, copy.deepcopy(robust_teacher), x, y, _sgd(ref), alpha, 30.0)
    _assert_same(loss, ref_loss, ours, ref)


# -- TRADES -------------------------------------------------------------------------------
def official_trades_step(model, x_natural, y, optimizer, beta):
    # yaodongyu/TRADES, trades.py (trades_loss, distance 'l_inf') and train_trades_cifar10.py (train)
    step_size, epsilon, perturb_steps = STEP, EPS, STEPS
    model.train()
    optimizer.zero_grad()
    # loss = trades_loss(model=model, x_natural=data, y=target, optimizer=optimizer, ...)
    criterion_kl = nn.KLDivLoss(reduction="sum")
    model.eval()
    batch_size = len(x_natural)
    x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape).detach()
    for _ in range(perturb_steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = criterion_kl(F.log_softmax(model(x_adv), dim=1),
                                   F.softmax(model(x_natural), dim=1))
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    model.train()
    x_adv = torch.clamp(x_adv, 0.0, 1.0).detach()
    optimizer.zero_grad()
    logits = model(x_natural)
    loss_natural = F.cross_entropy(logits, y)
    loss_robust = (1.0 / batch_size) * criterion_kl(F.log_softmax(model(x_adv), dim=1),
                                                    F.softmax(model(x_natural), dim=1))
    loss = loss_natural + beta * loss_robust
    # back in train()
    loss.backward()
    optimizer.step()
    return loss.detach()


def test_trades_step_equals_the_official_code(batch):
    """Full-scale KL (summed over classes / batch), eval-mode attack from the unclamped start,
    and the three train-mode passes (x, x', x) of the official loss."""
    x, y = batch
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    loss = _ours(_cfg("trades"), ours, {}, x, y, seed=11)
    torch.manual_seed(11)
    ref_loss = official_trades_step(ref, x, y, _sgd(ref), beta=6.0)
    _assert_same(loss, ref_loss, ours, ref)


# -- PGD-AT -------------------------------------------------------------------------------
def official_pgd_at_step(model, x_nat, y, optimizer):
    # MadryLab/cifar10_challenge, pgd_attack.py (LinfPGDAttack.perturb, loss_func 'xent',
    # random_start) and train.py (train_step on model.mean_xent of the adversarial batch).
    # Translated from TensorFlow: numpy's uniform draw is torch's here, and images are in
    # [0, 1] instead of [0, 255]. The model is built with mode='train' (model.py: batch norm
    # with is_training=True, updates_collections=None), so the attack's gradients use batch
    # statistics and every pass updates the moving averages: model.train() throughout.
    epsilon, num_steps, step_size = EPS, STEPS, STEP
    model.train()
    x = x_nat + torch.zeros_like(x_nat).uniform_(-epsilon, epsilon)
    x = torch.clamp(x, 0, 1)  # ensure valid pixel range
    for i in range(num_steps):
        x.requires_grad_(True)
        xent = F.cross_entropy(model(x), y, reduction="sum")   # model.xent = reduce_sum(y_xent)
        grad = torch.autograd.grad(xent, x)[0]
        x = x.detach() + step_size * torch.sign(grad)
        x = torch.min(torch.max(x, x_nat - epsilon), x_nat + epsilon)   # np.clip(x, x_nat - eps, x_nat + eps)
        x = torch.clamp(x, 0, 1)  # ensure valid pixel range
    x_batch_adv = x.detach()
    mean_xent = F.cross_entropy(model(x_batch_adv), y)   # model.mean_xent on adv_dict
    optimizer.zero_grad()
    mean_xent.backward()
    optimizer.step()
    return mean_xent.detach()


def test_pgd_at_step_equals_the_official_code(batch):
    """CE on x' (mean), x' from a clamped uniform start with the model in train mode."""
    x, y = batch
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    loss = _ours(_cfg("pgd_at"), ours, {}, x, y, seed=13)
    torch.manual_seed(13)
    ref_loss = official_pgd_at_step(ref, x, y, _sgd(ref))
    _assert_same(loss, ref_loss, ours, ref)


# -- FGSM-AT ------------------------------------------------------------------------------
def official_fgsm_at_step(model, X, y, opt):
    # locuslab/fast_adversarial, CIFAR10/train_fgsm.py (training loop, delta_init 'random').
    # Their images are normalised outside the model, so eps and the image range are per
    # channel there; here normalisation is inside the model, eps is 8/255 and the range [0, 1]
    # for every channel, so the per-channel uniform_ loop is one uniform_ over delta. amp's
    # scaled backward is a plain backward (fp32).
    epsilon, alpha = torch.tensor(8 / 255.), 10 / 255.   # --epsilon 8, --alpha 10
    lower_limit, upper_limit = torch.zeros(()), torch.ones(())
    criterion = nn.CrossEntropyLoss()

    def clamp(X, lower_limit, upper_limit):
        return torch.max(torch.min(X, upper_limit), lower_limit)

    model.train()
    delta = torch.zeros_like(X)
    delta.uniform_(-epsilon.item(), epsilon.item())
    delta.data = clamp(delta, lower_limit - X, upper_limit - X)
    delta.requires_grad = True
    output = model(X + delta[:X.size(0)])
    loss = F.cross_entropy(output, y)
    loss.backward()
    grad = delta.grad.detach()
    delta.data = clamp(delta + alpha * torch.sign(grad), -epsilon, epsilon)
    delta.data[:X.size(0)] = clamp(delta[:X.size(0)], lower_limit - X, upper_limit - X)
    delta = delta.detach()
    output = model(X + delta[:X.size(0)])
    loss = criterion(output, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


def test_fgsm_at_step_equals_the_official_code(batch):
    x, y = batch
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    loss = _ours(_cfg("fgsm_at"), ours, {}, x, y, seed=17)
    torch.manual_seed(17)
    ref_loss = official_fgsm_at_step(ref, x, y, _sgd(ref))
    _assert_same(loss, ref_loss, ours, ref)
