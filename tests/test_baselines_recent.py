"""The newer distillation baselines (DGAD, AdaAD, KDIGA, PeerAiD) against their official code.

Same harness as ``test_baselines.py``: on a fixed batch the trainer's own step
(:func:`ciard.trainer.train_step`) and the official training step, transcribed line by line
with the repository and file it comes from, start from the same weights and RNG state; their
losses, the updated parameters and BatchNorm statistics must agree. Changes made only to run
the official lines here: ``.cuda()`` / ``.to(device)`` dropped, ``Variable(t,
requires_grad=False)`` written as ``t.detach()``, ``size_average=False, reduce=False`` as
``reduction='none'``, names of the harness (eps, step size, steps, batch size) passed in.
KDIGA's paper links no code; its test transcribes its first author's script (see kdiga.py).
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ciard.methods import build_method
from ciard.trainer import train_step
from test_baselines import EPS, LR, STEP, STEPS, _assert_same, _cfg, _ours, _sgd, _student


@pytest.fixture(scope="module")
def robust_teacher(trained_cnn):
    return copy.deepcopy(trained_cnn).eval()


def official_adaad_inner_loss(model, teacher_model, x_natural, step_size=2 / 255, steps=10,
                              epsilon=8 / 255, BN_eval=True, random_init=True, clip_min=0.0,
                              clip_max=1.0):
    # boyellow/AdaAD, AT_helper.py (adaad_inner_loss); kunsaram01/DGAD, AT_helper.py is the same
    criterion_kl = nn.KLDivLoss(reduction='none')
    if BN_eval:
        model.eval()
    teacher_model.eval()
    if random_init:
        x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape).detach()
    else:
        x_adv = x_natural.detach()
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = criterion_kl(F.log_softmax(model(x_adv), dim=1),
                                   F.softmax(teacher_model(x_adv), dim=1))
            loss_kl = torch.sum(loss_kl)
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = torch.clamp(x_adv, clip_min, clip_max)
    if BN_eval:
        model.train()
    model.train()
    x_adv = torch.clamp(x_adv, clip_min, clip_max).detach()
    return x_adv


# -- AdaAD --------------------------------------------------------------------------------
def official_adaad_step(net, teacher_net, inputs, targets, optimizer, alpha, dataset):
    # boyellow/AdaAD, main.py (train(), args.method == 'AdaAD'), then loss.backward(); optimizer.step()
    adv_inputs = official_adaad_inner_loss(net, teacher_net, inputs, step_size=STEP, steps=STEPS, epsilon=EPS)
    net.train()
    optimizer.zero_grad()
    ori_outputs = net(inputs)
    adv_outputs = net(adv_inputs)
    with torch.no_grad():
        teacher_net.eval()
        t_ori_outputs = teacher_net(inputs)
        t_adv_outputs = teacher_net(adv_inputs)
    if dataset == 'CIFAR10':
        kl_loss1 = nn.KLDivLoss()(F.log_softmax(adv_outputs, dim=1),
                                  F.softmax(t_adv_outputs.detach(), dim=1))
        kl_loss2 = nn.KLDivLoss()(F.log_softmax(ori_outputs, dim=1),
                                  F.softmax(t_ori_outputs.detach(), dim=1))
    if dataset == 'CIFAR100':
        kl_loss1 = (1 / len(adv_outputs)) * torch.sum(nn.KLDivLoss(reduction='none')(
            F.log_softmax(adv_outputs, dim=1), F.softmax(t_adv_outputs.detach(), dim=1)))
        kl_loss2 = (1 / len(adv_outputs)) * torch.sum(nn.KLDivLoss(reduction='none')(
            F.log_softmax(ori_outputs, dim=1), F.softmax(t_ori_outputs.detach(), dim=1)))
    loss = alpha * kl_loss1 + (1 - alpha) * kl_loss2
    loss.backward()
    optimizer.step()
    return loss.detach()


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("alpha,dataset", [(1.0, "default"), (0.5, "default"), (0.5, "cifar100")])
def test_adaad_step_equals_the_official_code(batch, robust_teacher, alpha, dataset):
    """The attack through both networks at x', the passes x then x', each dataset's KL scale."""
    x, y = batch
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    cfg = _cfg("adaad", adaad_alpha=alpha, dataset=dataset)
    loss = _ours(cfg, ours, {"robust": copy.deepcopy(robust_teacher)}, x, y, seed=31)
    torch.manual_seed(31)
    ref_loss = official_adaad_step(ref, copy.deepcopy(robust_teacher), x, y, _sgd(ref), alpha,
                                   "CIFAR100" if dataset == "cifar100" else "CIFAR10")
    _assert_same(loss, ref_loss, ours, ref)


def test_adaad_attack_differentiates_through_the_teacher(batch, robust_teacher):
    """Detaching the teacher's output at x' (a plausible misreading) gives another x'."""
    from ciard.attacks import TeacherKLPGD
    x, _ = batch
    student = _student().eval()
    attack = TeacherKLPGD(robust_teacher, eps=EPS, steps=STEPS, step_size=STEP)
    torch.manual_seed(0)
    ours = attack(student, x, None)
    torch.manual_seed(0)
    x_adv = x + 0.001 * torch.randn(x.shape)
    for _ in range(STEPS):
        x_adv.requires_grad_()
        kl = F.kl_div(F.log_softmax(student(x_adv), 1), F.softmax(robust_teacher(x_adv), 1).detach(),
                      reduction="sum")
        g, = torch.autograd.grad(kl, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + STEP * g.sign(), x - EPS), x + EPS).clamp(0, 1)
    assert (ours - x_adv).abs().max() > 1e-3


# -- DGAD ---------------------------------------------------------------------------------
def official_dgad_step(net, teacher_net, inputs, targets, optimizer, ALP_beta, bs):
    # kunsaram01/DGAD, main.py (train(), args.method == 'DGAD', args.alp == 'on', a model other
    # than 'mobilenetV2'), then loss.backward(); optimizer.step()
    device = inputs.device
    adv_inputs = official_adaad_inner_loss(net, teacher_net, inputs, step_size=STEP, steps=STEPS, epsilon=EPS)
    net.train()
    optimizer.zero_grad()
    ori_outputs = net(inputs)
    adv_outputs = net(adv_inputs)
    KL_loss = nn.KLDivLoss(reduction='none')
    with torch.no_grad():
        teacher_net.eval()
        t_ori_outputs = teacher_net(inputs)
        t_adv_outputs = teacher_net(adv_inputs)
    # Lambda * KL(s(x), t(x)) + (1-Lambda) * KL(s(x'), t(x'))
    Lambda = torch.zeros(inputs.size(0)).to(device)
    t_misclassified_group = (torch.argmax(t_ori_outputs, dim=1) != targets)
    Lambda[t_misclassified_group] = 1.0
    num_lambda = Lambda.sum().item()
    # t(x) != y, swap between max_probs and true_probs
    ori_true_probs = torch.gather(t_ori_outputs, 1, targets.unsqueeze(1)).squeeze()
    ori_max_probs, ori_max_indices = torch.max(t_ori_outputs, dim=1)
    t_ori_outputs[t_misclassified_group, targets[t_misclassified_group]] = ori_max_probs[t_misclassified_group]
    t_ori_outputs[t_misclassified_group, ori_max_indices[t_misclassified_group]] = ori_true_probs[t_misclassified_group]
    # label swapping on adv inputs' misclassification
    correct_probs = torch.gather(t_adv_outputs, 1, targets.unsqueeze(1)).squeeze()
    max_probs, max_indices = torch.max((t_adv_outputs.scatter(1, targets.unsqueeze(1), -float('inf'))), dim=1)
    margin = correct_probs - max_probs
    mask = margin < 0
    t_adv_outputs[mask, targets[mask]] = max_probs[mask]
    t_adv_outputs[mask, max_indices[mask]] = correct_probs[mask]
    loss_clean = (1 / (num_lambda + 1e-10)) * torch.sum(
        Lambda * KL_loss(F.log_softmax(ori_outputs, dim=1), F.softmax(t_ori_outputs.detach(), dim=1)).sum(dim=1))
    loss_adv = (1 / (len(adv_inputs) - num_lambda)) * torch.sum(
        (1 - Lambda) * KL_loss(F.log_softmax(adv_outputs, dim=1), F.softmax(t_adv_outputs.detach(), dim=1)).sum(dim=1))
    loss_alp = nn.MSELoss()(F.softmax(adv_outputs, dim=1), F.softmax(ori_outputs, dim=1))
    loss = (num_lambda / bs) * loss_clean + ((bs - num_lambda) / bs) * loss_adv + ALP_beta * loss_alp
    loss.backward()
    optimizer.step()
    return loss.detach(), num_lambda, int(mask.sum())


@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_dgad_step_equals_the_official_code(batch, robust_teacher, beta):
    """Partition by the teacher's clean mistakes, both label swaps, the per-sample KL sums and
    their normalisations, the consistency term; passes x then x'."""
    x, y = batch
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    loss = _ours(_cfg("dgad", dgad_beta=beta), ours, {"robust": copy.deepcopy(robust_teacher)}, x, y, seed=41)
    torch.manual_seed(41)
    ref_loss, n_wrong, n_swapped = official_dgad_step(ref, copy.deepcopy(robust_teacher), x, y, _sgd(ref),
                                                      beta, len(y))
    # the batch exercises every branch: clean mistakes, clean hits, swapped adversarial logits
    assert 0 < n_wrong < len(y) and n_swapped > 0
    _assert_same(loss, ref_loss, ours, ref)


def test_dgad_all_wrong_batch_is_finite(batch, robust_teacher):
    """Where the teacher misses every clean input the official script stops with
    ZeroDivisionError (1 / (N - n) in Python floats); here the adversarial term is 0 and the clean term carries the loss."""
    x, y = batch
    wrong = (robust_teacher(x).argmax(1) + 1) % 10   # labels the teacher gets wrong everywhere
    method = build_method(_cfg("dgad"), _student(), {"robust": copy.deepcopy(robust_teacher)})
    out = method.compute(x, wrong, progress=0.0)
    assert torch.isfinite(out.loss) and out.metrics["teacher_wrong_fraction"].item() == 1.0


# -- KDIGA (its first author's script) -----------------------------------------------------
def official_kdiga_step(basic_net, teacher_net, inputs, targets, optimizer, alpha, temp, gamma):
    # RulinShao/AdversariallyRobustDistillation (branch master), main.py, train(),
    # distill_method 'kdiga' (device transfers and tqdm dropped)
    KL_loss = nn.KLDivLoss()
    XENT_loss = nn.CrossEntropyLoss()
    basic_net.train()
    teacher_net.eval()
    optimizer.zero_grad()

    basic_outputs = basic_net(inputs)
    teacher_outputs = teacher_net(inputs)

    x = inputs.detach()
    x.requires_grad_()
    with torch.enable_grad():
        t_loss = XENT_loss(teacher_net(x), targets)
    t_grad = torch.autograd.grad(t_loss, x)[0]
    x.grad = None
    with torch.enable_grad():
        s_loss = XENT_loss(basic_net(x), targets)
    s_grad = torch.autograd.grad(s_loss, x, create_graph=True)[0]

    gama = gamma / inputs.shape[0]
    loss = alpha * temp * temp * KL_loss(F.log_softmax(basic_outputs / temp, dim=1),
                                         F.softmax(teacher_outputs / temp, dim=1)) + (
            1.0 - alpha) * XENT_loss(basic_outputs, targets) + gama * (s_grad - t_grad).norm(2)
    loss.backward()
    optimizer.step()
    return loss.detach()


@pytest.mark.parametrize("alpha,tau,gamma", [(0.5, 1.0, 0.5), (0.9, 4.0, 1000.0)])
def test_kdiga_step_equals_the_authors_script(batch, robust_teacher, alpha, tau, gamma):
    x, y = batch
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    cfg = _cfg("kdiga", kdiga_alpha=alpha, kdiga_temp=tau, kdiga_gamma=gamma)
    loss = _ours(cfg, ours, {"robust": copy.deepcopy(robust_teacher)}, x, y, seed=51)
    ref_loss = official_kdiga_step(ref, copy.deepcopy(robust_teacher), x, y, _sgd(ref), alpha, tau, gamma)
    _assert_same(loss, ref_loss, ours, ref)
    # the alignment term moves the student (double backpropagation reaches the weights)
    plain = copy.deepcopy(s0)
    _ours(_cfg("kdiga", kdiga_alpha=alpha, kdiga_temp=tau, kdiga_gamma=0.0), plain,
          {"robust": copy.deepcopy(robust_teacher)}, x, y, seed=51)
    assert not torch.allclose(plain.head.weight, ours.head.weight, atol=1e-6)


# -- PeerAiD ------------------------------------------------------------------------------
def official_peeraid_steps(student_net, peer_net, batches, seeds, student_optimizer, peer_optimizer,
                           T, lamb1, lamb2, lamb3, gamma1, gamma2, re_kd_temperature):
    # jaewonalive/PeerAiD, main.py (train_kd) with LinfPeerAttack of attack_function.py
    def perturb(model, teacher_logits, x_natural, y, k_step, epsilon=EPS, alpha=STEP):
        criterion_kl = nn.KLDivLoss(reduction='none')
        model.eval()
        if k_step > 0:
            x = x_natural.detach() + 0.001 * torch.randn(x_natural.shape).detach()
        for i in range(k_step):
            x.requires_grad_()
            with torch.enable_grad():
                loss_kl = criterion_kl(F.log_softmax(model(x), dim=1), F.softmax(teacher_logits, dim=1))
                loss_kl = torch.sum(loss_kl)
            grad = torch.autograd.grad(loss_kl, [x])[0]
            x = x.detach() + alpha * torch.sign(grad.detach())
            x = torch.min(torch.max(x, x_natural - epsilon), x_natural + epsilon)
            x = torch.clamp(x, 0, 1).detach()
        return x

    peer_criterion = nn.CrossEntropyLoss()
    peer_net.train()
    student_net.train()
    losses = []
    for seed, (inputs, targets) in zip(seeds, batches):
        torch.manual_seed(seed)
        inputs = inputs.clone()
        student_optimizer.zero_grad()
        peer_optimizer.zero_grad()
        peer_net.eval()
        with torch.no_grad():
            peer_logits = peer_net(inputs)
        peer_net.train()
        adv = perturb(student_net, peer_logits, inputs, targets, STEPS)
        student_net.train()
        adv.detach_()
        adv_outputs = peer_net(adv)
        student_logit_target = student_net(adv)
        loss_peer = peer_criterion(adv_outputs, targets) * gamma1 + nn.KLDivLoss()(F.log_softmax(adv_outputs / re_kd_temperature, dim=1), F.softmax(student_logit_target / re_kd_temperature, dim=1)) * gamma2 * re_kd_temperature * re_kd_temperature
        peer_outputs = adv_outputs.clone()
        peer_outputs.detach_()
        adv.detach_()
        student_outputs = student_net(adv)
        inputs.detach_()
        logit_nat = student_net(inputs)
        student_net.train()
        loss_student = F.cross_entropy(student_outputs, targets) * (lamb1) + \
            nn.KLDivLoss()(F.log_softmax(student_outputs / T, dim=1),
                           F.softmax(peer_outputs / T, dim=1)) * (lamb2 * T * T) + \
            nn.KLDivLoss()(F.log_softmax(student_outputs / T, dim=1),
                           F.softmax(logit_nat / T, dim=1)) * (lamb3 * T * T)
        loss_total = loss_peer + loss_student
        loss_total.backward()
        peer_optimizer.step()
        student_optimizer.step()
        losses.append(loss_total.detach())
    return losses


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("lamb1,lamb2,lamb3,gamma1,gamma2,tp", [
    (0.0, 1.0, 1.0, 1.0, 0.1, 1.0),      # the official CIFAR-10 command
    (0.5, 0.7, 1.3, 0.9, 0.4, 2.0)])     # every weight distinct: a swapped or dropped one shows
def test_peeraid_steps_equal_the_official_code(batch, lamb1, lamb2, lamb3, gamma1, gamma2, tp):
    """Two steps (the peer and its optimiser carry over): the joint backward, including the
    gradient the peer loss sends into the student through its undetached target."""
    x, y = batch
    cfg = _cfg("peeraid", lr=LR, peeraid_lambda1=lamb1, peeraid_lambda2=lamb2, peeraid_lambda3=lamb3,
               peeraid_gamma1=gamma1, peeraid_gamma2=gamma2, peeraid_peer_temp=tp)
    s0 = _student()
    ours, ref = copy.deepcopy(s0), copy.deepcopy(s0)
    torch.manual_seed(61)
    method = build_method(cfg, ours, {})
    peer0 = copy.deepcopy(method.peer)
    opt = _sgd(ours)
    seeds = [62, 63]
    our_losses = []
    for seed in seeds:
        torch.manual_seed(seed)
        out, _ = train_step(method, opt, x, y, progress=0.0, lr=LR, channels_last=False)
        our_losses.append(out.loss.detach())
    ref_peer = copy.deepcopy(peer0)
    ref_losses = official_peeraid_steps(ref, ref_peer, [(x, y)] * 2, seeds, _sgd(ref), _sgd(ref_peer),
                                        5.0, lamb1, lamb2, lamb3, gamma1, gamma2, tp)
    assert our_losses[0].item() == pytest.approx(ref_losses[0].item(), rel=1e-5)
    _assert_same(our_losses[-1], ref_losses[-1], ours, ref)
    _assert_same(our_losses[-1], ref_losses[-1], method.peer, ref_peer)
    assert not torch.allclose(method.peer.head.weight, peer0.head.weight)   # the peer trained


@pytest.mark.parametrize("schedule,progress", [("cosine", 0.75), ("ciard", 0.9), ("triangle", 0.1)])
def test_the_peer_follows_the_students_lr_schedule(batch, schedule, progress):
    """Official PeerAiD gives the peer the student's lr and decay epochs: its step at any point
    of the run uses the lr the trainer gives the student there."""
    from ciard.schedules import student_lr
    x, y = batch
    cfg = _cfg("peeraid", lr=LR, lr_schedule=schedule)
    torch.manual_seed(64)
    method = build_method(cfg, _student(), {})
    opt = _sgd(method.student)
    train_step(method, opt, x, y, progress=progress, lr=student_lr(LR, progress, schedule), channels_last=False)
    expected = student_lr(LR, progress, schedule)
    assert expected != pytest.approx(LR)          # the schedule has moved the lr away from its base
    assert [g["lr"] for g in method.peer_optim.param_groups] == [pytest.approx(expected)]
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(expected)]


def test_peeraid_resumes_its_peer(batch):
    x, y = batch
    cfg = _cfg("peeraid", lr=LR)
    method = build_method(cfg, _student(), {})
    out = method.compute(x, y, 0.0)
    out.loss.backward()
    method.after_step(out, y, 0.0)
    other = build_method(cfg, _student(seed=1), {})
    other.load_state_dict(method.state_dict())
    for a, b in zip(method.peer.state_dict().values(), other.peer.state_dict().values()):
        assert torch.equal(a, b)
    assert other.peer_optim.state_dict()["state"].keys() == method.peer_optim.state_dict()["state"].keys()


# -- settings -----------------------------------------------------------------------------
@pytest.mark.parametrize("flag,value,message", [
    ("adaad_alpha", "1.5", "adaad_alpha = 1.5 must be in [0, 1]"),
    ("kdiga_alpha", "-0.1", "kdiga_alpha = -0.1 must be in [0, 1]"),
    ("kdiga_temp", "0", "kdiga_temp = 0 must be positive"),
    ("peeraid_temp", "-1", "peeraid_temp = -1 must be positive"),
    ("dgad_beta", "-1", "dgad_beta = -1 must not be negative"),
    ("peeraid_gamma2", "nan", "peeraid_gamma2 = nan is not a finite number"),
])
def test_new_settings_are_checked_with_one_line(flag, value, message, capsys):
    from ciard.cli import main
    assert main(["train", "--method", flag.split("_")[0], f"--{flag.replace('_', '-')}", value,
                 "--epochs", "1"]) == 2
    assert message in capsys.readouterr().err


def test_the_train_form_offers_and_accepts_them():
    """The app's Train form lists the methods and builds their configs with the CLI's rules."""
    from ciard.studio.forms import FIELDS, build_config, preset_values
    for method in ("dgad", "adaad", "kdiga", "peeraid"):
        assert method in FIELDS["method"].options
        cfg = build_config("demo", {**preset_values("demo"), "method": method}, device="cpu")
        assert cfg.method.method == method
