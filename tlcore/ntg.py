"""The negative-transfer gap over seeds: its mean, spread, confidence interval and verdict.

A single run's NTG (:func:`tlcore.metrics.negative_transfer_gap`) says whether
the source helped *this* seed. Whether transfer helps or hurts is a claim about
the mean over seeds, and a gap of a few points can be noise: this module turns
the gaps of several seeds into a summary with a two-sided Student-t interval and
a label that says which it is.

References
----------
.. [Wang2019] Z. Wang, Z. Dai, B. Póczos, J. Carbonell. "Characterizing and
   Avoiding Negative Transfer". CVPR 2019.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

__all__ = [
    "NEGATIVE_TRANSFER",
    "POSITIVE_TRANSFER",
    "WITHIN_NOISE",
    "SINGLE_SEED",
    "NO_EFFECT",
    "NTGSummary",
    "summarise_ntg",
    "mean_sd",
    "ntg_label",
    "format_ntg",
]

NEGATIVE_TRANSFER = "negative transfer"
POSITIVE_TRANSFER = "positive transfer"
WITHIN_NOISE = "within noise"
SINGLE_SEED = "single seed"
NO_EFFECT = "no effect"


def mean_sd(values: Iterable[float]) -> tuple[float, float | None]:
    r"""Mean and sample standard deviation (``ddof=1``) of ``values``.

    .. math:: \bar x = \frac1n \sum_i x_i, \qquad s = \sqrt{\tfrac{1}{n-1} \sum_i (x_i - \bar x)^2}

    One value has no spread: its ``s`` is None, never 0.0 (0.0 would claim the
    seeds agree exactly). This is the one place in the lab that computes a
    mean and spread over seeds; summaries, sweeps, lessons and the pages call it.

    Raises
    ------
    ValueError
        No values.
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_sd needs at least one value")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, None
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))


def ntg_label(ntg: float) -> str:
    """The plain label of one run's NTG: > 0 negative transfer, < 0 positive, exactly 0 no effect.

    A single run has no interval, so this reads the sign alone; over seeds use
    :func:`summarise_ntg`, whose label reads the t-interval.
    """
    ntg = float(ntg)
    if not math.isfinite(ntg):
        raise ValueError(f"an NTG must be finite, got {ntg}")
    if ntg > 0.0:
        return NEGATIVE_TRANSFER
    if ntg < 0.0:
        return POSITIVE_TRANSFER
    return NO_EFFECT


def format_ntg(ntg: "float | NTGSummary | None", digits: int = 3) -> str:
    """One text form of an NTG for the CLI, tables and hover text.

    A float (one run): ``+0.120 (negative transfer)``. A summary over seeds:
    ``+0.120 ± 0.030 over 5 seeds, 95% CI [+0.083, +0.157]: negative transfer``
    (one seed: ``+0.120 over 1 seed: single seed``). None gives ``""``.
    """
    if ntg is None:
        return ""
    if isinstance(ntg, NTGSummary):
        s = ntg
        text = f"{s.mean:+.{digits}f}"
        if s.std is not None:
            text += f" ± {s.std:.{digits}f}"
        text += f" over {s.n} seed{'s' if s.n != 1 else ''}"
        if s.ci_low is not None and s.ci_high is not None:
            text += f", {s.confidence:.0%} CI [{s.ci_low:+.{digits}f}, {s.ci_high:+.{digits}f}]"
        return f"{text}: {s.label}"
    return f"{float(ntg):+.{digits}f} ({ntg_label(ntg)})"


@dataclass(frozen=True)
class NTGSummary:
    """NTGs of ``n`` seeds summarised (see :func:`summarise_ntg`).

    ``std`` is the sample standard deviation (``ddof=1``); ``ci_low`` and
    ``ci_high`` bound the two-sided ``confidence`` interval of the mean, and are
    None (as is ``std``) for a single seed, which has no spread. ``label`` is one
    of ``"negative transfer"``, ``"positive transfer"``, ``"within noise"`` and
    ``"single seed"``.
    """

    mean: float
    std: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    confidence: float
    label: str

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "n": self.n, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "confidence": self.confidence, "label": self.label}


def summarise_ntg(gaps: Iterable[float], confidence: float = 0.95) -> NTGSummary:
    r"""Mean, spread and confidence interval of negative-transfer gaps over seeds.

    With the gaps :math:`g_1, \dots, g_n` (one per seed; NTG > 0 is negative
    transfer, [Wang2019]_):

    .. math::
        \bar g = \frac1n \sum_i g_i, \qquad
        s = \sqrt{\frac{1}{n-1} \sum_i (g_i - \bar g)^2}, \qquad
        \bar g \pm t_{1-(1-c)/2,\; n-1} \, \frac{s}{\sqrt n}

    the Student-t interval for the mean at confidence ``c`` (seeds treated as
    independent draws; the usual small-sample interval, e.g. 4.30·s/√3 for
    three seeds at 95%). The label reads the interval: entirely above 0 is
    ``"negative transfer"``, entirely below 0 ``"positive transfer"``,
    containing 0 ``"within noise"``. One seed has no spread, so no interval:
    its label is ``"single seed"`` whatever the sign. Identical gaps (``s = 0``)
    give a zero-width interval at the mean.

    Parameters
    ----------
    gaps : iterable of float
        Finite NTGs, one per seed.
    confidence : float
        In (0, 1).

    Raises
    ------
    ValueError
        No gaps, a non-finite gap, or a confidence outside (0, 1).
    """
    values = [float(g) for g in gaps]
    if not values:
        raise ValueError("summarise_ntg needs at least one gap")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"negative-transfer gaps must be finite, got {values}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return NTGSummary(mean=mean, std=None, n=1, ci_low=None, ci_high=None, confidence=confidence,
                          label=SINGLE_SEED)
    from scipy.stats import t as student_t

    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half_width = float(student_t.ppf(0.5 + confidence / 2.0, df=n - 1)) * std / math.sqrt(n)
    low, high = mean - half_width, mean + half_width
    if low > 0.0:
        label = NEGATIVE_TRANSFER
    elif high < 0.0:
        label = POSITIVE_TRANSFER
    else:
        label = WITHIN_NOISE
    return NTGSummary(mean=mean, std=std, n=n, ci_low=low, ci_high=high, confidence=confidence, label=label)
