"""The machine's own limit: FLOP counts of a step (attack gradients included) and the matmul peak."""
import pytest
import torch

from ciard.roofline import count_flops, matmul_peak


def test_counts_forward_and_both_backward_products():
    n, d_in, d_out = 8, 32, 16
    layer = torch.nn.Linear(d_in, d_out)
    x = torch.rand(n, d_in)
    fwd, _ = count_flops(lambda: layer(x))
    assert fwd == 2 * n * d_in * d_out
    step, by_op = count_flops(lambda: layer(x).sum().backward())   # + weight gradient only
    assert step == 2 * fwd
    assert sum(by_op.values()) == step


def test_counts_input_gradients_taken_with_autograd_grad():
    """An attack's step: the gradient with respect to the input, parameters frozen."""
    conv = torch.nn.Conv2d(3, 8, 3, padding=1).requires_grad_(False)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    fwd, _ = count_flops(lambda: conv(x))
    total, _ = count_flops(lambda: torch.autograd.grad(conv(x).sum(), x))
    assert fwd == 2 * 2 * 8 * 3 * 9 * 16 * 16
    assert total == 2 * fwd   # the input gradient costs as much as the forward; no weight gradient


@pytest.mark.parametrize("precision, dtype", [("fp32", "fp32"), ("bf16", "bf16")])
def test_matmul_peak(precision, dtype):
    peak = matmul_peak(torch.device("cpu"), precision, n=128, rounds=2, reps=1)
    assert peak["dtype"] == dtype and peak["n"] == 128
    assert peak["gflops_per_s"] == max(peak["gflops_per_s_rounds"]) > 0
    assert len(peak["gflops_per_s_rounds"]) == 2
