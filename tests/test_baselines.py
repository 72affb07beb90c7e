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


# -- B-MTARD ------------------------------------------------------------------------------
def official_bmtard_steps(student, teacher, teacher_nat, batches, optimizer, seeds):
    # zhaoshiji123/MTARD-extension, resnet18_mtard_cifar10.py (training loop), with
    # mtard_inner_loss_ce of zhaoshiji123/MTARD, mtard/mtard_loss.py (the script's mtard_loss)
    def mtard_inner_loss_ce(model, teacher_adv_model, x_natural, y, optimizer, step_size=0.003,
                            epsilon=0.031, perturb_steps=10, beta=6.0):
        criterion_ce_loss = torch.nn.CrossEntropyLoss()
        model.eval()
        batch_size = len(x_natural)
        x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape).detach()
        for _ in range(perturb_steps):
            x_adv.requires_grad_()
            with torch.enable_grad():
                loss_ce = criterion_ce_loss(model(x_adv), y)
            grad = torch.autograd.grad(loss_ce, [x_adv])[0]
            x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
            x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
            x_adv = torch.clamp(x_adv, 0.0, 1.0)
        model.train()
        x_adv = torch.clamp(x_adv, 0.0, 1.0).detach()
        optimizer.zero_grad()
        student_logits = model(x_adv)
        with torch.no_grad():
            teacher_logits = teacher_adv_model(x_adv)
        return student_logits, teacher_logits

    weight = {"adv_loss": 1 / 2.0, "nat_loss": 1 / 2.0}
    init_loss_nat = None
    init_loss_adv = None

    def kl_loss(a, b):
        loss = -a * b + torch.log(b + 1e-5) * b
        return loss

    def entropy_value(a):
        value = torch.log(a + 1e-5) * a
        return value

    teacher.eval()
    teacher_nat.eval()
    weight_learn_rate = 0.025
    temp_learn_rate = 0.001
    temp_adv = 1
    temp_nat = 1
    temp_max = 10
    temp_min = 1
    losses = []
    for seed, (train_batch_data, train_batch_labels) in zip(seeds, batches):
        torch.manual_seed(seed)
        student.train()
        optimizer.zero_grad()
        student_adv_logits, teacher_adv_logits = mtard_inner_loss_ce(student, teacher, train_batch_data, train_batch_labels, optimizer, step_size=STEP, epsilon=EPS, perturb_steps=STEPS)
        student.train()
        student_nat_logits = student(train_batch_data)
        with torch.no_grad():
            teacher_nat_logits = teacher_nat(train_batch_data)
        kl_Loss1 = kl_loss(F.log_softmax(student_adv_logits, dim=1), F.softmax(teacher_adv_logits.detach() / temp_adv, dim=1))
        kl_Loss2 = kl_loss(F.log_softmax(student_nat_logits, dim=1), F.softmax(teacher_nat_logits.detach() / temp_nat, dim=1))
        kl_Loss1 = torch.mean(kl_Loss1)
        kl_Loss2 = torch.mean(kl_Loss2)
        adv_teacher_entropy = torch.mean(entropy_value(F.softmax(teacher_adv_logits.detach() / temp_adv, dim=1)))
        nat_teacher_entropy = torch.mean(entropy_value(F.softmax(teacher_nat_logits.detach() / temp_nat, dim=1)))
        temp_adv = temp_adv - temp_learn_rate * torch.sign((adv_teacher_entropy.detach() / nat_teacher_entropy.detach() - 1)).item()
        temp_nat = temp_nat - temp_learn_rate * torch.sign((nat_teacher_entropy.detach() / adv_teacher_entropy.detach() - 1)).item()
        temp_adv = max(min(temp_max, temp_adv), temp_min)
        temp_nat = max(min(temp_max, temp_nat), temp_min)
        if init_loss_nat == None:  # noqa: E711 - as written there
            init_loss_nat = kl_Loss2.item()
        if init_loss_adv == None:  # noqa: E711
            init_loss_adv = kl_Loss1.item()
        lhat_adv = kl_Loss1.item() / init_loss_adv
        lhat_nat = kl_Loss2.item() / init_loss_nat
        lhat_avg = (lhat_adv + lhat_nat) / len(weight)
        inv_rate_adv = lhat_adv / lhat_avg
        inv_rate_nat = lhat_nat / lhat_avg
        weight["nat_loss"] = weight["nat_loss"] - weight_learn_rate * (weight["nat_loss"] - inv_rate_nat / (inv_rate_adv + inv_rate_nat))
        weight["adv_loss"] = weight["adv_loss"] - weight_learn_rate * (weight["adv_loss"] - inv_rate_adv / (inv_rate_adv + inv_rate_nat))
        if weight["adv_loss"] < 0:
            weight["adv_loss"] = 0
        if weight["nat_loss"] < 0:
            weight["nat_loss"] = 0
        coef = 1.0 / (weight["adv_loss"] + weight["nat_loss"])
        weight["adv_loss"] *= coef
        weight["nat_loss"] *= coef
        total_loss = weight["adv_loss"] * kl_Loss1 + weight["nat_loss"] * kl_Loss2
        total_loss.backward()
        optimizer.step()
        losses.append(total_loss.detach())
    return losses, temp_adv, temp_nat, weight


def test_bmtard_steps_equal_the_official_code(batch, robust_teacher):
    """Three steps (the adaptive weights and temperatures carry over): losses, temperatures,
    weights (moved before they form the loss), parameters and BN statistics (attack, then
    S(x'), then S(x))."""
    x, y = batch
    clean_teacher = _student(seed=5).eval()   # a different (random) net: other entropies
    with torch.no_grad():
        clean_teacher.head.weight.mul_(30)
    teachers = {"clean": clean_teacher, "robust": robust_teacher}
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    seeds = [21, 22, 23]
    method = build_method(_cfg("mtard"), ours, {k: copy.deepcopy(v) for k, v in teachers.items()})
    opt = _sgd(ours)
    our_losses = []
    for seed in seeds:
        torch.manual_seed(seed)
        out, _ = train_step(method, opt, x, y, progress=0.0, lr=LR, channels_last=False)
        our_losses.append(out.loss.detach())
    ref_losses, temp_adv, temp_nat, weight = official_bmtard_steps(
        ref, copy.deepcopy(robust_teacher), copy.deepcopy(clean_teacher), [(x, y)] * 3, _sgd(ref), seeds)
    for a, b in zip(our_losses, ref_losses):
        assert a.item() == pytest.approx(b.item(), rel=1e-5)
    assert method.tau_adv.item() == pytest.approx(temp_adv) and method.tau_nat.item() == pytest.approx(temp_nat)
    assert method.w_adv.item() == pytest.approx(weight["adv_loss"], rel=1e-5)
    assert method.w_nat.item() == pytest.approx(weight["nat_loss"], rel=1e-5)
    assert weight["adv_loss"] != pytest.approx(0.5, abs=1e-6)   # the weights did move
    _assert_same(our_losses[-1], ref_losses[-1], ours, ref)


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
