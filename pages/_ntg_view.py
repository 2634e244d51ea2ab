"""How the pages show a negative-transfer gap: one run's badge, its mean and spread over seeds,
and the table of NTGs by configuration. The text comes from ``tlcore.ntg``; the colours are
the page's (red: negative transfer, green: positive, grey: no effect, noise or one seed).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from tlcore.config import form_fields
from tlcore.ntg import NEGATIVE_TRANSFER, NO_EFFECT, POSITIVE_TRANSFER, WITHIN_NOISE, NTGSummary, format_ntg, ntg_label
from tlcore.strategies import STRATEGIES

from pages._figures import BAD, GOOD, NEUTRAL, ntg_colour

# What each verdict means for the source, after tlcore.ntg's own words.
MEANING = {NEGATIVE_TRANSFER: "the source hurt", POSITIVE_TRANSFER: "the source helped",
           NO_EFFECT: "the source changed nothing", WITHIN_NOISE: "the interval contains 0"}
ONE_SEED = "1 seed: run more seeds (change the seed in the sidebar) to see the spread"
_MARKDOWN_COLOURS = {BAD: "red", GOOD: "green"}  # st.markdown's colour names; anything else is gray


def markdown_colour(ntg: float | NTGSummary) -> str:
    """``red``, ``green`` or ``gray``: :func:`pages._figures.ntg_colour` as ``st.markdown`` names it."""
    return _MARKDOWN_COLOURS.get(ntg_colour(ntg), "gray")


def ntg_badge(metrics: dict, over_seeds: NTGSummary | None = None) -> None:
    """Show the negative-transfer gap when the run has one (red when positive, green when negative,
    grey at exactly 0: no effect) and, given ``over_seeds`` (``tlcore.seeds.ntg_over_seeds`` of the
    run), its mean and spread over the seeds of the run's configuration (see
    :func:`ntg_seeds_markdown`)."""
    ntg = metrics.get("ntg")
    if not isinstance(ntg, (int, float)):
        return
    base = metrics.get("target_only_accuracy")
    st.markdown(f"#### :{markdown_colour(ntg)}[NTG {format_ntg(ntg)}] — {MEANING[ntg_label(ntg)]}"
                + (" (this seed)" if over_seeds else ""))
    st.caption(f"NTG = target error with the source − target error of target_only "
               f"(target_only accuracy {base:.3f}, this run {metrics.get('target_accuracy', float('nan')):.3f}).")
    if over_seeds is not None:
        st.markdown(ntg_seeds_markdown(over_seeds))


def ntg_seeds_text(summary: NTGSummary) -> str:
    """``NTG`` and ``tlcore.ntg.format_ntg`` of the summary with what its verdict means (± is the
    sample standard deviation), or :data:`ONE_SEED`."""
    if summary.n < 2:
        return ONE_SEED
    return f"NTG {format_ntg(summary)} ({MEANING[summary.label]})"


def ntg_seeds_markdown(summary: NTGSummary) -> str:
    """:func:`ntg_seeds_text` coloured: red for negative transfer, green for positive, grey within
    noise and for a single seed (which has no verdict over seeds yet)."""
    colour = "gray" if summary.n < 2 else markdown_colour(summary)
    return f"**:{colour}[{ntg_seeds_text(summary)}]**"


def _settings_text(config: dict) -> str:
    """A configuration's schedule and non-default hyperparameters, e.g. ``30 epochs · lr 0.003 ·
    batch 64 · weight=0.5``."""
    parts = [f"{config.get('epochs')} epochs", f"lr {config.get('lr', float('nan')):g}",
             f"batch {config.get('batch_size')}"]
    strategy = config.get("strategy")
    if strategy in STRATEGIES:
        defaults = {f.name: f.default for f in form_fields(STRATEGIES[strategy].Config)}
        parts += [f"{k}={v}" for k, v in sorted((config.get("params") or {}).items()) if defaults.get(k, v) != v]
    return " · ".join(parts)


def ntg_seeds_frame(groups) -> pd.DataFrame:
    """``tlcore.seeds.ntg_by_configuration`` as a table: one row per configuration with its mean
    NTG, standard deviation, interval, number of seeds and label."""
    rows = []
    for g in groups:
        r, s = g.record, g.summary
        rows.append({"strategy": r.strategy, "source": r.source, "target": r.target,
                     "labels/class": r.target_labels, "settings": _settings_text(r.config),
                     "seeds": ", ".join(str(x) for x in g.seeds), "n": s.n, "NTG mean": s.mean, "NTG sd": s.std,
                     "CI low": s.ci_low, "CI high": s.ci_high,
                     "verdict": "1 seed: run more seeds" if s.n < 2 else s.label})
    return pd.DataFrame(rows, columns=["strategy", "source", "target", "labels/class", "settings", "seeds", "n",
                                       "NTG mean", "NTG sd", "CI low", "CI high", "verdict"])


NTG_SEEDS_COLUMNS = {
    "NTG mean": st.column_config.NumberColumn(format="%+.3f", help="mean negative-transfer gap over the seeds "
                                              "(positive = the source hurt)"),
    "NTG sd": st.column_config.NumberColumn(format="%.3f", help="sample standard deviation over the seeds"),
    "CI low": st.column_config.NumberColumn(format="%+.3f", help="95% Student-t interval of the mean"),
    "CI high": st.column_config.NumberColumn(format="%+.3f", help="95% Student-t interval of the mean"),
}


def style_ntg_verdicts(frame: pd.DataFrame):
    """The table with its verdicts coloured (red: negative transfer, green: positive, grey: noise)."""
    colours = {NEGATIVE_TRANSFER: BAD, POSITIVE_TRANSFER: GOOD}
    return frame.style.map(lambda v: f"color: {colours.get(v, NEUTRAL)}; font-weight: bold", subset=["verdict"])
