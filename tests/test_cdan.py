"""CDAN+E: the multilinear maps against plain references, the entropy weights' known values,
and the conditioning a run builds."""
import math

import pytest
import torch

from tlcore import events as ev
from tlcore.losses import entropy_certainty_weights, multilinear_map, randomized_multilinear_map
from tlcore.strategies.cdan import Conditioning
from tlcore.train import Trainer

from helpers import fast_config


def test_multilinear_map_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    f, p = torch.randn(5, 4, generator=g), torch.softmax(torch.randn(5, 3, generator=g), 1)
    out = multilinear_map(f, p)
    assert out.shape == (5, 12)
    for b in range(5):
        for c in range(3):
            for k in range(4):
                assert out[b, c * 4 + k].item() == pytest.approx(p[b, c].item() * f[b, k].item(), rel=1e-6)
    with pytest.raises(ValueError, match="features"):
        multilinear_map(f, p[:4])


def test_randomized_map_matches_loop_reference_and_keeps_inner_products_on_average():
    g = torch.Generator().manual_seed(1)
    f, p = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.softmax(torch.randn(3, 2, generator=g, dtype=torch.float64), 1)
    rf, rg = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 2, generator=g, dtype=torch.float64)
    out = randomized_multilinear_map(f, p, rf, rg)
    for b in range(3):
        for j in range(6):
            proj_f = sum(rf[j, k].item() * f[b, k].item() for k in range(4))
            proj_g = sum(rg[j, c].item() * p[b, c].item() for c in range(2))
            assert out[b, j].item() == pytest.approx(proj_f * proj_g / math.sqrt(6), rel=1e-10)
    # E<T(f,g), T(f',g')> = <f,f'><g,g'>: the full maps' inner product (Long et al., 2018, section 3.2).
    d = 200_000
    rf, rg = torch.randn(d, 4, generator=g, dtype=torch.float64), torch.randn(d, 2, generator=g, dtype=torch.float64)
    big = randomized_multilinear_map(f, p, rf, rg)
    full = multilinear_map(f, p)
    assert (big[0] @ big[1]).item() == pytest.approx((full[0] @ full[1]).item(), abs=0.05 * full[0].norm() * full[1].norm())
    with pytest.raises(ValueError, match="do not fit"):
        randomized_multilinear_map(f, p, rf[:, :3], rg)


def test_entropy_weights_known_values():
    one_hot, uniform = [1.0, 0.0], [0.5, 0.5]
    w = entropy_certainty_weights(torch.tensor([one_hot, uniform]))
    # 1 + exp(-0) = 2 and 1 + exp(-log 2) = 1.5, normalised to mean 1 over the batch.
    assert w.tolist() == pytest.approx([2 / 1.75, 1.5 / 1.75])
    assert entropy_certainty_weights(torch.full((7, 10), 0.1)).tolist() == pytest.approx([1.0] * 7)
    p = torch.softmax(torch.randn(9, 4, requires_grad=True), 1)
    weights = entropy_certainty_weights(p)
    assert not weights.requires_grad and weights.mean().item() == pytest.approx(1.0)


def test_conditioning_is_multilinear_below_the_size_and_seeded_random_above():
    small = Conditioning(64, 2, random_above=4096, random_dim=1024, seed=0)
    assert not small.randomized and small.output_dim == 128 and not list(small.buffers())
    big = Conditioning(512, 10, random_above=4096, random_dim=1024, seed=0)
    again = Conditioning(512, 10, random_above=4096, random_dim=1024, seed=0)
    assert big.randomized and big.output_dim == 1024
    assert torch.equal(big.r_features, again.r_features) and torch.equal(big.r_predictions, again.r_predictions)
    assert not list(big.parameters())  # fixed: never trained
    f, p = torch.randn(3, 512), torch.softmax(torch.randn(3, 10), 1)
    assert big(f, p).shape == (3, 1024)


@pytest.mark.parametrize("random_above", [4096, 100])
def test_a_run_conditions_the_discriminator_and_reports_its_accuracy(random_above):
    trainer = Trainer(fast_config(strategy="cdan", params={"random_above": random_above, "random_dim": 32}))
    events = list(trainer.run())
    conditioning = trainer.ctx.modules["conditioning"]
    assert conditioning.output_dim == (64 * 2 if random_above == 4096 else 32)
    assert trainer.ctx.modules["discriminator"][0].in_features == conditioning.output_dim
    steps = [e for e in events if isinstance(e, ev.StepEvent)]
    assert "domain" in steps[-1].losses and 0 < steps[-1].extras["grl_coeff"] <= 1
    assert 0.0 <= events[-1].extras["domain_accuracy"] <= 1.0


def test_the_domain_term_weights_each_domain_to_mean_one():
    from tlcore.strategies.base import Stream
    trainer = Trainer(fast_config(strategy="cdan"))
    ctx, (phase,) = trainer.ctx, trainer.phases
    s, t = ctx.data["source"], ctx.data["target"]
    batch = {"source": Stream(s.x[:50].float(), s.y[:50], torch.arange(50)),
             "target": Stream(t.x[:30].float(), t.y[:30], torch.arange(30))}
    term = phase.losses(batch, ctx)["domain"].item()
    with torch.no_grad():
        total = 0.0
        for x, label in ((batch["source"].x, 0.0), (batch["target"].x, 1.0)):
            f, logits = trainer.model.forward_with_features(x)
            p = torch.softmax(logits, 1)
            raw = [1 + math.exp(sum(q * math.log(q) for q in row)) for row in p.tolist()]
            weights = [len(raw) * r / sum(raw) for r in raw]
            d = ctx.modules["discriminator"](multilinear_map(f, p)).squeeze(1).tolist()
            for w, z in zip(weights, d):
                prob = 1 / (1 + math.exp(-z))
                total += -w * (label * math.log(prob) + (1 - label) * math.log(1 - prob))
    assert term == pytest.approx(total / 80, rel=1e-5)
