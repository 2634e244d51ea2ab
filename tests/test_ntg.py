"""NTG over seeds: mean, sample standard deviation, Student-t interval and the verdict."""
import math

import numpy as np
import pytest
from scipy import stats

from tlcore.ntg import (NEGATIVE_TRANSFER, POSITIVE_TRANSFER, SINGLE_SEED, WITHIN_NOISE, NTGSummary,
                        summarise_ntg)

# t_{0.975, 2}: the 97.5% quantile of Student's t with 2 degrees of freedom (tables: 4.3027).
T_975_DF2 = 4.302652729911275


def test_three_seeds_by_hand():
    summary = summarise_ntg([0.1, 0.2, 0.3])
    # mean 0.2; s = sqrt(((-0.1)² + 0 + 0.1²) / 2) = 0.1; half width = 4.3027 · 0.1 / √3 = 0.24841
    assert summary.mean == pytest.approx(0.2)
    assert summary.std == pytest.approx(0.1)
    assert summary.n == 3
    assert summary.ci_low == pytest.approx(0.2 - T_975_DF2 * 0.1 / math.sqrt(3))
    assert summary.ci_high == pytest.approx(0.2 + 0.248414, abs=1e-6)
    assert summary.label == WITHIN_NOISE  # the interval (-0.048, 0.448) contains 0


def test_agrees_with_numpy_and_scipy():
    gaps = [0.31, 0.12, 0.25, 0.18, 0.22]
    summary = summarise_ntg(gaps, confidence=0.9)
    assert summary.mean == pytest.approx(np.mean(gaps))
    assert summary.std == pytest.approx(np.std(gaps, ddof=1))
    low, high = stats.t.interval(0.9, df=len(gaps) - 1, loc=np.mean(gaps), scale=stats.sem(gaps))
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert summary.confidence == 0.9


@pytest.mark.parametrize("gaps,label", [
    ([0.2, 0.25, 0.3], NEGATIVE_TRANSFER),      # (0.076, 0.324): the source hurt on every reading
    ([-0.10, -0.12, -0.14], POSITIVE_TRANSFER),  # (-0.170, -0.070)
    ([0.05, -0.04, 0.02], WITHIN_NOISE),
    ([0.0, 0.0], WITHIN_NOISE),                  # zero width at 0
    ([0.1, 0.1, 0.1], NEGATIVE_TRANSFER),        # zero width above 0
    ([0.3], SINGLE_SEED),
    ([-0.3], SINGLE_SEED),
])
def test_labels(gaps, label):
    assert summarise_ntg(gaps).label == label


def test_single_seed_has_no_spread():
    summary = summarise_ntg([0.24])
    assert summary == NTGSummary(mean=0.24, std=None, n=1, ci_low=None, ci_high=None, confidence=0.95,
                                 label=SINGLE_SEED)
    assert summary.to_dict()["label"] == "single seed"


@pytest.mark.parametrize("gaps,confidence", [([], 0.95), ([0.1, float("nan")], 0.95), ([0.1, 0.2], 1.0),
                                             ([0.1, 0.2], 0.0)])
def test_rejects_bad_input(gaps, confidence):
    with pytest.raises(ValueError):
        summarise_ntg(gaps, confidence=confidence)


# --- one mean/sd and one NTG label for the whole lab ------------------------------------------------
def test_mean_sd_matches_the_textbook_formula_and_one_value_has_no_spread():
    import statistics

    from tlcore.ntg import mean_sd

    values = [0.81, 0.86, 0.79, 0.9]
    mean, sd = mean_sd(values)
    assert mean == pytest.approx(statistics.fmean(values), abs=1e-15)
    assert sd == pytest.approx(statistics.stdev(values), abs=1e-15)
    assert mean_sd([0.5]) == (0.5, None)  # not 0.0: one seed says nothing about spread
    with pytest.raises(ValueError):
        mean_sd([])


def test_an_ntg_of_exactly_zero_is_no_effect_not_positive_transfer():
    from tlcore.ntg import NEGATIVE_TRANSFER, NO_EFFECT, POSITIVE_TRANSFER, format_ntg, ntg_label

    assert ntg_label(0.0) == NO_EFFECT
    assert ntg_label(-0.0) == NO_EFFECT
    assert ntg_label(1e-9) == NEGATIVE_TRANSFER
    assert ntg_label(-1e-9) == POSITIVE_TRANSFER
    assert "no effect" in format_ntg(0.0) and "positive" not in format_ntg(0.0)


def test_format_ntg_of_a_summary_states_its_interval_and_label():
    from tlcore.ntg import format_ntg, summarise_ntg

    text = format_ntg(summarise_ntg([0.1, 0.12, 0.14]))
    assert text.startswith("+0.120 ± 0.020 over 3 seeds, 95% CI [+0.070, +0.170]")
    assert text.endswith("negative transfer")
    assert format_ntg(summarise_ntg([0.1])).endswith("single seed")
    assert format_ntg(None) == ""
