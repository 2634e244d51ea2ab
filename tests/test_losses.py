"""tlcore.losses against slow, plain float64 references (Python loops / numpy) and known values."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from tlcore.losses import (DomainAdversarialLoss, GradientReversalLayer, coral_loss, dann_lambda,
                           domain_adversarial_loss, gaussian_bandwidths, grad_reverse, median_sq_distance,
                           mmd2_unbiased)


# --- plain references -------------------------------------------------------------------

def reference_median_sq_distance(z: np.ndarray) -> float:
    """Median over distinct pairs i < j, by a double loop."""
    dists = [float(((z[i] - z[j]) ** 2).sum()) for i in range(len(z)) for j in range(i + 1, len(z))]
    return float(np.median(dists))


def reference_mmd2(x: np.ndarray, y: np.ndarray, sigma2) -> float:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) averaged over Gaussian kernels, by loops over pairs."""
    m, n = len(x), len(y)
    values = []
    for s2 in sigma2:
        def k(a, b):
            return math.exp(-float(((a - b) ** 2).sum()) / (2.0 * s2))
        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
        values.append(xx + yy - 2.0 * xy)
    return float(np.mean(values))


def reference_coral(xs: np.ndarray, xt: np.ndarray) -> float:
    d = xs.shape[1]
    cs, ct = np.cov(xs, rowvar=False, ddof=1), np.cov(xt, rowvar=False, ddof=1)
    return float(((cs - ct) ** 2).sum() / (4 * d * d))


def samples(m, n, d, shift=0.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype) + shift


# --- median heuristic and bandwidths ------------------------------------------------------

@pytest.mark.parametrize("m, n", [(7, 6), (6, 6)])  # odd and even number of pairs
def test_median_sq_distance_matches_loop_reference(m, n):
    x, y = samples(m, n, 3, shift=0.5)
    expected = reference_median_sq_distance(torch.cat([x, y]).numpy())
    assert median_sq_distance(x, y).item() == pytest.approx(expected, rel=1e-12)


def test_median_sq_distance_with_ties():
    # points on a small integer grid: many equal distances, including both middle ones
    g = torch.Generator().manual_seed(4)
    for _ in range(5):
        x, y = torch.randint(0, 3, (9, 2), generator=g).double(), torch.randint(0, 3, (7, 2), generator=g).double()
        expected = reference_median_sq_distance(torch.cat([x, y]).numpy())
        assert median_sq_distance(x, y).item() == expected


def test_median_sq_distance_subsamples_deterministically_and_detaches():
    x, y = samples(300, 200, 4, shift=1.0)
    x.requires_grad_(True)
    first = median_sq_distance(x, y, max_points=50)
    assert not first.requires_grad
    assert first.item() == median_sq_distance(x, y, max_points=50).item()  # default generator is seeded
    seeded = [median_sq_distance(x, y, max_points=50, generator=torch.Generator().manual_seed(s)).item()
              for s in (1, 1, 2)]
    assert seeded[0] == seeded[1] != seeded[2]
    # the subsample is the generator's permutation prefix of the pooled sample
    keep = torch.randperm(500, generator=torch.Generator().manual_seed(1))[:50]
    expected = reference_median_sq_distance(torch.cat([x, y]).detach()[keep].numpy())
    assert seeded[0] == pytest.approx(expected, rel=1e-12)


def test_gaussian_bandwidths_known_values():
    assert gaussian_bandwidths(torch.tensor(3.0)).tolist() == [0.75, 1.5, 3.0, 6.0, 12.0]
    assert gaussian_bandwidths(2.0, num_kernels=1).tolist() == [2.0]
    assert gaussian_bandwidths(1.0, num_kernels=4, multiplier=3.0).tolist() == pytest.approx([1 / 9, 1 / 3, 1, 3])
    zero = gaussian_bandwidths(torch.tensor(0.0))
    assert bool((zero > 0).all()) and bool(torch.isfinite(zero).all())
    with pytest.raises(ValueError):
        gaussian_bandwidths(1.0, num_kernels=0)


# --- MMD² ---------------------------------------------------------------------------------

@pytest.mark.parametrize("m, n, block_size", [(9, 7, 2048), (9, 7, 4), (11, 13, 5), (8, 8, 1)])
@pytest.mark.parametrize("sigma2", [None, [0.5, 1.0, 2.0], [0.3, 1.7, 4.0], [2.0]])
def test_mmd2_matches_loop_reference(m, n, block_size, sigma2):
    x, y = samples(m, n, 3, shift=0.4, seed=m + n)
    bandwidths = (gaussian_bandwidths(median_sq_distance(x, y)) if sigma2 is None
                  else torch.tensor(sigma2, dtype=torch.float64))
    expected = reference_mmd2(x.numpy(), y.numpy(), bandwidths.tolist())
    assert mmd2_unbiased(x, y, bandwidths, block_size=block_size).item() == pytest.approx(expected, rel=1e-9, abs=1e-13)
    if sigma2 is None:  # the default bandwidths are the median heuristic
        assert mmd2_unbiased(x, y, block_size=block_size).item() == pytest.approx(expected, rel=1e-9, abs=1e-13)


def test_mmd2_float32_close_to_float64_reference():
    x, y = samples(40, 30, 5, shift=0.3)
    sigma2 = gaussian_bandwidths(median_sq_distance(x, y))
    expected = reference_mmd2(x.numpy(), y.numpy(), sigma2.tolist())
    value = mmd2_unbiased(x.float(), y.float(), sigma2.float(), block_size=16)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_mmd2_identical_samples_known_value():
    """With y = x the U-statistic is exactly −2(1 − k̄)/m, k̄ the mean off-diagonal kernel value:
    near 0 and slightly negative."""
    x, _ = samples(25, 2, 3)
    sigma2 = gaussian_bandwidths(median_sq_distance(x, x))
    xn = x.numpy()
    mean_offdiag = np.mean([np.mean([math.exp(-((xn[i] - xn[j]) ** 2).sum() / (2 * s2)) for s2 in sigma2.tolist()])
                            for i in range(25) for j in range(25) if i != j])
    value = mmd2_unbiased(x, x, sigma2, block_size=7).item()
    assert value == pytest.approx(-2.0 * (1.0 - mean_offdiag) / 25, rel=1e-9)
    assert -0.1 < value < 0


def test_mmd2_detects_shift():
    x, y = samples(200, 200, 4)
    _, y_shifted = samples(200, 200, 4, shift=1.0, seed=1)
    assert abs(mmd2_unbiased(x, y).item()) < 0.01
    assert mmd2_unbiased(x, y_shifted).item() > 0.1


def test_mmd2_is_unbiased_under_equal_distributions():
    """Mean over independent draws within 3 standard errors of 0, while the biased
    V-statistic (diagonal included) on the same draws is clearly positive."""
    g = torch.Generator().manual_seed(0)
    sigma2 = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    m = n = 10
    unbiased, biased = [], []
    for _ in range(400):
        x, y = torch.randn(m, 2, generator=g, dtype=torch.float64), torch.randn(n, 2, generator=g, dtype=torch.float64)
        unbiased.append(mmd2_unbiased(x, y, sigma2).item())
        z = torch.cat([x, y])
        kernel = torch.stack([torch.exp(-torch.cdist(z, z) ** 2 / (2 * s2)) for s2 in sigma2]).mean(0)
        biased.append((kernel[:m, :m].mean() + kernel[m:, m:].mean() - 2 * kernel[:m, m:].mean()).item())
    for values, should_be_zero in ((unbiased, True), (biased, False)):
        mean, stderr = np.mean(values), np.std(values, ddof=1) / math.sqrt(len(values))
        assert bool(abs(mean) < 3 * stderr) is should_be_zero


def test_mmd2_blocked_equals_unblocked_float32():
    x, y = samples(301, 213, 6, shift=0.2, dtype=torch.float32)
    sigma2 = gaussian_bandwidths(median_sq_distance(x, y))
    whole = mmd2_unbiased(x, y, sigma2, block_size=4096).item()
    for block_size in (64, 100, 257):
        assert mmd2_unbiased(x, y, sigma2, block_size=block_size).item() == pytest.approx(whole, rel=1e-4, abs=1e-7)


def test_mmd2_autograd_path_matches_fast_path_and_blocks():
    x, y = samples(50, 37, 4, shift=0.3)
    sigma2 = gaussian_bandwidths(median_sq_distance(x, y))
    fast = mmd2_unbiased(x, y, sigma2, block_size=16).item()
    grads = []
    for block_size in (16, 1024):
        xr = x.clone().requires_grad_(True)
        value = mmd2_unbiased(xr, y, sigma2, block_size=block_size)
        assert value.item() == pytest.approx(fast, rel=1e-10)
        grads.append(torch.autograd.grad(value, xr)[0])
    np.testing.assert_allclose(grads[0].numpy(), grads[1].numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("sigma2", [[0.5, 1.0, 2.0], [0.4, 1.3]])  # squaring path and one-exp-per-kernel path
def test_mmd2_gradcheck(sigma2):
    x, y = samples(6, 5, 3, shift=0.3)
    x.requires_grad_(True)
    y.requires_grad_(True)
    s2 = torch.tensor(sigma2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: mmd2_unbiased(a, b, s2, block_size=4), (x, y))
    s2.requires_grad_(True)  # trainable bandwidths
    assert torch.autograd.gradcheck(lambda a, s: mmd2_unbiased(a, y.detach(), s), (x, s2))


def test_mmd2_ignores_autocast():
    x, y = samples(64, 48, 8, shift=0.2, dtype=torch.float32)
    plain = mmd2_unbiased(x, y).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = mmd2_unbiased(x, y)
    assert under_autocast.dtype == torch.float32
    assert under_autocast.item() == pytest.approx(plain, rel=1e-5)


def test_mmd2_rejects_bad_input():
    x, y = samples(5, 5, 3)
    with pytest.raises(ValueError):
        mmd2_unbiased(x, y[:, :2])
    with pytest.raises(ValueError):
        mmd2_unbiased(x[:1], y)
    with pytest.raises(ValueError):
        mmd2_unbiased(x, y, torch.tensor([1.0, 0.0]))


# --- CORAL --------------------------------------------------------------------------------

def test_coral_matches_numpy_reference():
    xs, xt = samples(30, 20, 5, shift=0.5)
    xt = xt * torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    assert coral_loss(xs, xt).item() == pytest.approx(reference_coral(xs.numpy(), xt.numpy()), rel=1e-12)


def test_coral_known_values():
    # d = 1: unbiased variances 2 and 0 -> (2 - 0)² / 4 = 1
    assert coral_loss(torch.tensor([[0.0], [2.0]]), torch.tensor([[5.0], [5.0]])).item() == pytest.approx(1.0)
    xs, _ = samples(20, 2, 4)
    assert coral_loss(xs, xs).item() == 0.0
    assert coral_loss(xs, xs[torch.randperm(20)] + 3.0).item() == pytest.approx(0.0, abs=1e-12)  # order, translation


def test_coral_gradcheck():
    xs, xt = samples(6, 5, 3, shift=0.5)
    assert torch.autograd.gradcheck(coral_loss, (xs.requires_grad_(True), xt.requires_grad_(True)))


# --- gradient reversal and the DANN ramp ---------------------------------------------------

@pytest.mark.parametrize("coeff", [1.0, 0.3, 0.0])
def test_gradient_reversal_flips_and_scales_gradient(coeff):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)

    def loss(features):
        return torch.tanh(features @ weight).pow(2).sum()

    plain_x, plain_w = torch.autograd.grad(loss(x * 2.0), (x, weight))
    reversed_out = grad_reverse(x * 2.0, coeff)
    assert torch.equal(reversed_out, x * 2.0)  # identity forward
    rev_x, rev_w = torch.autograd.grad(loss(reversed_out), (x, weight))
    np.testing.assert_allclose(rev_x.numpy(), (-coeff * plain_x).numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(rev_w.numpy(), plain_w.numpy(), rtol=1e-12, atol=0)  # layers after it: untouched


def test_gradient_reversal_layer_coeff_is_settable():
    layer = GradientReversalLayer(coeff=0.5)
    x = torch.ones(3, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.tolist() == [-0.5] * 3
    layer.coeff = 2.0
    x.grad = None
    layer(x).sum().backward()
    assert x.grad.tolist() == [-2.0] * 3
    assert "coeff=2.0" in repr(layer)


def test_dann_lambda_known_values():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(0.9999092, abs=1e-7)
    assert dann_lambda(0.5) == pytest.approx(math.tanh(2.5))  # 2/(1+e^{-γp}) − 1 = tanh(γp/2)
    assert dann_lambda(1.0, gamma=0.0) == 0.0
    ramp = [dann_lambda(p / 10) for p in range(11)]
    assert ramp == sorted(ramp)
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError):
            dann_lambda(bad)


# --- the DANN domain-adversarial loss -------------------------------------------------------

def _bce_reference(source_logits, target_logits, ws=None, wt=None):
    """Plain loop: mean over both domains of w * -(y log s(d) + (1-y) log(1-s(d))), y = 0 source, 1 target."""
    terms = []
    for logits, label, weights in ((source_logits, 0.0, ws), (target_logits, 1.0, wt)):
        for i, d in enumerate(logits.tolist()):
            p = 1.0 / (1.0 + math.exp(-d))
            w = 1.0 if weights is None else float(weights[i])
            terms.append(-w * (label * math.log(p) + (1.0 - label) * math.log(1.0 - p)))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_s,n_t", [(5, 5), (7, 3)])
def test_domain_adversarial_loss_matches_a_plain_reference(n_s, n_t, weighted):
    g = torch.Generator().manual_seed(n_s * 10 + n_t)
    ds = torch.randn(n_s, generator=g, dtype=torch.float64) * 3
    dt = torch.randn(n_t, generator=g, dtype=torch.float64) * 3
    ws = torch.rand(n_s, generator=g, dtype=torch.float64) if weighted else None
    wt = torch.rand(n_t, generator=g, dtype=torch.float64) if weighted else None
    got = domain_adversarial_loss(ds, dt, ws, wt)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(_bce_reference(ds, dt, ws, wt), rel=1e-12)


def test_domain_adversarial_loss_known_values_and_bad_input():
    zeros = torch.zeros(3)
    assert domain_adversarial_loss(zeros, zeros).item() == pytest.approx(math.log(2))  # at chance
    confident = domain_adversarial_loss(torch.full((4,), -20.0), torch.full((4,), 20.0))
    assert 0 <= confident.item() < 1e-8  # a perfect discriminator
    ones = torch.ones(3)
    assert domain_adversarial_loss(zeros, ones, ones, ones).item() == pytest.approx(
        domain_adversarial_loss(zeros, ones).item())  # unit weights are the plain loss
    with pytest.raises(ValueError, match="both domains"):
        domain_adversarial_loss(torch.zeros(0), zeros)
    with pytest.raises(ValueError, match="weights"):
        domain_adversarial_loss(zeros, zeros, torch.ones(2))


@pytest.mark.parametrize("coeff", [1.0, 0.25])
def test_domain_adversarial_module_reverses_feature_gradients_only(coeff):
    g = torch.Generator().manual_seed(1)
    fs = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    ft = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    disc = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    ws = torch.rand(6, generator=g, dtype=torch.float64)
    loss = DomainAdversarialLoss(disc, coeff=coeff)
    out = loss(fs, ft, source_weight=ws)
    logits = disc(torch.cat([fs, ft])).reshape(-1)
    plain = domain_adversarial_loss(logits[:6], logits[6:], ws)
    assert out.item() == pytest.approx(plain.item(), rel=1e-12)  # the forward is the plain loss
    params = list(disc.parameters())
    got = torch.autograd.grad(out, [fs, ft, *params])
    want = torch.autograd.grad(plain, [fs, ft, *params])
    for a, b in zip(got[:2], want[:2]):  # features: reversed and scaled
        np.testing.assert_allclose(a.numpy(), (-coeff * b).numpy(), rtol=1e-12, atol=1e-15)
    for a, b in zip(got[2:], want[2:]):  # the discriminator: minimises the loss as is
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-15)
    assert f"coeff={coeff}" in repr(loss)
