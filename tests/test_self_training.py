"""Self-training: the pseudo-label loss against a plain reference, the seeded views, and the
coverage and accuracy that a run reports (and the Train page draws)."""
import math

import pytest
import torch

from tlcore import events as ev
from tlcore.data.augment import affine, cutout, jitter, strong_augment, weak_augment
from tlcore.losses import class_balanced_selection, curriculum_thresholds, pseudo_label_loss
from tlcore.strategies.base import Stream
from tlcore.train import Trainer

from helpers import fast_config, strip_timing


def _pseudo_label_by_loops(weak, strong, threshold):
    """Slow plain reference: FixMatch's eq. 4, one example at a time."""
    total = 0.0
    for w_row, s_row in zip(weak.tolist(), strong.tolist()):
        q = [math.exp(v) / sum(math.exp(u) for u in w_row) for v in w_row]
        if max(q) >= threshold:
            label = q.index(max(q))
            total += -math.log(math.exp(s_row[label]) / sum(math.exp(u) for u in s_row))
    return total / len(weak)


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.8, 0.95, 1.0])
def test_pseudo_label_loss_matches_loop_reference(threshold):
    g = torch.Generator().manual_seed(1)
    weak, strong = torch.randn(40, 4, generator=g, dtype=torch.float64) * 3, torch.randn(40, 4, generator=g, dtype=torch.float64)
    loss, mask, labels = pseudo_label_loss(weak, strong, threshold)
    assert loss.item() == pytest.approx(_pseudo_label_by_loops(weak, strong, threshold), rel=1e-10, abs=1e-12)
    confidence = torch.softmax(weak, 1).max(1).values
    assert torch.equal(mask, confidence >= threshold) and torch.equal(labels, weak.argmax(1))


def test_pseudo_label_known_values_and_gradient_through_the_strong_view_only():
    weak = torch.tensor([[10.0, 0.0], [0.0, 0.0]], requires_grad=True)  # confident; undecided (0.5)
    strong = torch.zeros(2, 2, requires_grad=True)
    loss, mask, labels = pseudo_label_loss(weak, strong, threshold=0.9)
    assert mask.tolist() == [True, False] and labels[0].item() == 0
    assert loss.item() == pytest.approx(math.log(2) / 2)  # one CE of log 2, averaged over the batch of 2
    loss.backward()
    assert weak.grad is None or not weak.grad.any()
    assert strong.grad[0].abs().sum() > 0 and not strong.grad[1].any()
    # The same logits as both views: Lee's plain pseudo-label loss, which a confident batch drives to ~0.
    same = torch.tensor([[20.0, 0.0], [0.0, 20.0]])
    assert pseudo_label_loss(same, same, 0.95)[0].item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="threshold"):
        pseudo_label_loss(same, same, 1.5)
    with pytest.raises(ValueError, match="one shape"):
        pseudo_label_loss(same, same[:1], 0.5)


def _curriculum_by_loops(assigned, classes, tau):
    """Plain reference for FlexMatch's eqs. 6, 7, 11."""
    sigma = [sum(1 for a in assigned if a == c) for c in range(classes)]
    unused = sum(1 for a in assigned if a < 0)
    denominator = max(max(sigma), unused)
    betas = [s / denominator if denominator else 0.0 for s in sigma]
    return [b / (2 - b) * tau for b in betas]


@pytest.mark.parametrize("assigned", [[-1] * 6, [0, 0, 0, 1, -1, -1], [0, 1, 1, 2, 2, 2], [2, 2, -1, -1, -1, -1, -1]])
def test_curriculum_thresholds_match_loop_reference_and_known_values(assigned):
    got = curriculum_thresholds(torch.tensor(assigned), 3, 0.9).tolist()
    assert got == pytest.approx(_curriculum_by_loops(assigned, 3, 0.9), abs=1e-7)
    if all(a < 0 for a in assigned):
        assert got == [0.0, 0.0, 0.0]  # nothing learnt yet: every example passes
    if assigned == [0, 1, 1, 2, 2, 2]:
        assert got[2] == pytest.approx(0.9)  # the best-learnt class gets the full threshold
    with pytest.raises(ValueError, match="num_classes"):
        curriculum_thresholds(torch.tensor([3]), 3, 0.9)


def test_per_class_thresholds_apply_by_the_pseudo_label():
    weak = torch.log(torch.tensor([[0.7, 0.3], [0.3, 0.7], [0.6, 0.4]]))
    loss, mask, labels = pseudo_label_loss(weak, weak, torch.tensor([0.65, 0.9]))
    assert labels.tolist() == [0, 1, 0] and mask.tolist() == [True, False, False]
    assert loss.item() == pytest.approx(-math.log(0.7) / 3, rel=1e-6)
    with pytest.raises(ValueError, match="per-class"):
        pseudo_label_loss(weak, weak, torch.tensor([0.5, 0.5, 0.5]))


def _class_balanced_by_loops(probabilities, fraction):
    """Plain reference: per predicted class, sort by confidence (stable) and keep the first ceil(fraction * n)."""
    rows = probabilities.tolist()
    labels = [row.index(max(row)) for row in rows]
    keep = [False] * len(rows)
    for c in set(labels):
        members = sorted((i for i in range(len(rows)) if labels[i] == c), key=lambda i: -max(rows[i]))
        for i in members[:math.ceil(fraction * len(members))]:
            keep[i] = True
    return keep


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_class_balanced_selection_matches_loop_reference(fraction):
    logits = torch.randn(64, 5, generator=torch.Generator().manual_seed(2)) * 2
    logits[:40, 0] += 4  # class 0 dominates: a fixed fraction per class still selects the others
    probabilities = torch.softmax(logits, 1)
    selected = class_balanced_selection(probabilities, fraction)
    assert selected.tolist() == _class_balanced_by_loops(probabilities, fraction)
    if 0 < fraction:
        assert set(probabilities[selected].argmax(1).tolist()) == set(probabilities.argmax(1).tolist())
    ties = torch.full((4, 2), 0.5)
    assert class_balanced_selection(ties, 0.5).tolist() == [True, True, False, False]  # earlier rows first
    with pytest.raises(ValueError, match="fraction"):
        class_balanced_selection(probabilities, 1.5)


def test_weak_view_shifts_whole_pixels_and_views_are_seeded():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    moved = affine(x, torch.zeros(1), torch.tensor([2.0]), torch.tensor([-1.0]))
    assert moved[0, 0, 3, 6].item() == pytest.approx(1.0) and moved.sum().item() == pytest.approx(1.0)
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for view in (lambda g: weak_augment(images, 2, g), lambda g: strong_augment(images, g)):
        a, b = view(torch.Generator().manual_seed(5)), view(torch.Generator().manual_seed(5))
        assert torch.equal(a, b) and a.shape == images.shape
        assert not torch.equal(a, view(torch.Generator().manual_seed(6)))
    assert weak_augment(images, 0, torch.Generator()) is images
    assert torch.equal(jitter(images, 0.0, torch.Generator()), images)


def test_cutout_fills_one_square_per_image_with_its_mean():
    images = torch.rand(5, 1, 20, 20, generator=torch.Generator().manual_seed(0)) + 1.0
    out = cutout(images, 0.25, torch.Generator().manual_seed(3))
    for before, after in zip(images, out):
        changed = (before != after)[0]
        rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
        assert 0 < changed.sum() <= 25 and len(rows) <= 5 and len(cols) <= 5
        assert torch.allclose(after[0][changed], before.mean().expand(int(changed.sum())))


def test_coverage_and_accuracy_count_the_confident_target_examples():
    # mlp has no batch norm, so the target rows' logits do not depend on the rest of the batch.
    trainer = Trainer(fast_config(strategy="self_training", params={"threshold": 0.9, "selection": "threshold"}))
    list(trainer.run())  # a trained model, some of whose target predictions are confident
    strategy, ctx = trainer.strategy, trainer.ctx
    (phase,) = trainer.phases
    target, source = ctx.data["target"], ctx.data["source"]
    batch = {"source": Stream(source.x[:50].float(), source.y[:50], torch.arange(50)),
             "target": Stream(target.x[:80].float(), target.y[:80], torch.arange(80))}
    phase.losses(batch, ctx)
    with torch.no_grad():
        confidence, predicted = torch.softmax(trainer.model(batch["target"].x), 1).max(1)
    confident = confidence >= 0.9
    extras = strategy.eval_extras(ctx, None, None)
    assert extras["pseudo_label_coverage"] == pytest.approx(confident.float().mean().item())
    assert confident.any(), "the check needs some confident examples"
    right = (predicted[confident] == batch["target"].y[confident]).float().mean().item()
    assert extras["pseudo_label_accuracy"] == pytest.approx(right)
    assert strategy.eval_extras(ctx, None, None) == {}  # counts restart after each report


def test_runs_on_images_report_coverage_and_accuracy_per_evaluation_reproducibly():
    config = fast_config(strategy="self_training", source="digits", target="digits:noise=0.4", evals_per_epoch=2)
    events = list(Trainer(config).run())
    evals = [e for e in events if isinstance(e, ev.EvalEvent)]
    assert len(evals) == 2
    coverage = [e.extras["pseudo_label_coverage"] for e in evals]
    assert all(0.0 <= c <= 1.0 for c in coverage) and coverage[-1] > 0
    accuracy = [e.extras["pseudo_label_accuracy"] for e in evals if "pseudo_label_accuracy" in e.extras]
    assert accuracy and all(0.0 <= a <= 1.0 for a in accuracy)
    assert all("pseudo_label" in e.losses for e in events if isinstance(e, ev.StepEvent))
    again = list(Trainer(config).run())
    assert strip_timing([ev.to_dict(e) for e in again]) == strip_timing([ev.to_dict(e) for e in events])
    # The Train page draws them as live curves.
    from pages import _live
    figures = dict(_live.live_figures([ev.to_dict(e) for e in events]))
    traces = figures["pseudo_labels"]["data"]
    assert traces[0]["y"] == coverage and len(traces[1]["y"]) == len(evals)
