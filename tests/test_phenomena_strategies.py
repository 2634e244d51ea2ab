"""Phenomena of the prediction- and statistics-based strategies (mcc, adabn, self_training, cdan),
kept only where the effect holds beyond seed noise: the paired difference from source_only over
seeds 0-2 has a 95 % t-interval above 0.

Measured (mean ± sd over seeds 0-2, cheap settings, 2026-12-02) and left out as within noise
(the two that hold are below):
moons → moons:rotate=40 (10 epochs): source_only 0.671 ± 0.082, mcc 0.723 ± 0.117, self_training
0.637 ± 0.081, cdan 0.695 ± 0.069; digits → digits:noise=0.4 (5 epochs): source_only 0.630 ± 0.189,
mcc 0.902 ± 0.022, self_training 0.902 ± 0.028, cdan 0.780 ± 0.053, adabn 0.857 ± 0.047 (large
gains, but source_only's spread over 3 seeds is larger still); digits → digits:rotate=40 (5 epochs):
source_only 0.403 ± 0.024, self_training 0.487 ± 0.013, adabn (lenet_bn) 0.414 ± 0.025.
"""
import statistics

import pytest

from tlcore.config import RunConfig
from tlcore.train import Trainer

pytestmark = pytest.mark.slow
SEEDS = (0, 1, 2)
T_975_DF2 = 4.303  # the 97.5 % quantile of Student's t with 2 degrees of freedom (3 seeds, paired)


def _paired_interval(a, b):
    """95 % t-interval of the mean paired difference a - b."""
    differences = [x - y for x, y in zip(a, b)]
    half = T_975_DF2 * statistics.stdev(differences) / len(differences) ** 0.5
    mean = statistics.mean(differences)
    return mean - half, mean + half


def _target_accuracies(config):
    return [list(Trainer(config.replace(seed=s)).run())[-1].target_accuracy for s in SEEDS]


def test_adabn_beats_source_only_on_the_same_batch_norm_model_on_rotated_moons():
    """Measured: adabn 0.852 / 0.886 / 0.824 against source_only (mlp_bn) 0.758 / 0.736 / 0.652."""
    config = RunConfig(source="moons", target="moons:rotate=40", strategy="adabn", epochs=10, device="cpu",
                       threads=1, log_every=50)
    adabn = _target_accuracies(config)
    source_only = _target_accuracies(config.replace(strategy="source_only", model="mlp_bn"))
    low, high = _paired_interval(adabn, source_only)
    assert low > 0, (adabn, source_only, (low, high))


def test_mcc_beats_source_only_on_rotated_digits():
    """Measured (5 epochs): mcc 0.536 / 0.610 / 0.555 against source_only 0.403 / 0.378 / 0.427
    (paired 95 % interval of the gain 0.018 to 0.311). The issue asks for one strategy that beats
    source_only beyond the seed noise on digits:rotate=40; dann does not on the CNN."""
    config = RunConfig(source="digits", target="digits:rotate=40", strategy="mcc", epochs=5, device="cpu",
                       threads=1, log_every=50)
    mcc = _target_accuracies(config)
    source_only = _target_accuracies(config.replace(strategy="source_only"))
    low, high = _paired_interval(mcc, source_only)
    assert low > 0, (mcc, source_only, (low, high))
