"""Reference points without adaptation: source_only, target_only, oracle."""
from __future__ import annotations

from .base import Strategy, cross_entropy_phase


class SourceOnly(Strategy):
    name = "source_only"
    summary = "Train on the labelled source, evaluate on the target: no adaptation (the lower reference)."
    role = "baseline"
    streams = frozenset({"source"})

    def phases(self, ctx):
        return [cross_entropy_phase("train", ("source",))]


class TargetOnly(Strategy):
    name = "target_only"
    summary = "Train on the k labelled target examples alone: the baseline for the negative-transfer gap."
    role = "reference"
    streams = frozenset({"target_labelled"})
    needs_target_labels = True
    heterogeneous = True  # never sees the source, so any source will do (it is gromov's NTG baseline too)

    def phases(self, ctx):
        return [cross_entropy_phase("train", ("target_labelled",))]


class Oracle(Strategy):
    name = "oracle"
    summary = "Train on every labelled target training example: the upper reference."
    role = "reference"
    streams = frozenset({"target_all"})
    heterogeneous = True  # never sees the source

    def phases(self, ctx):
        return [cross_entropy_phase("train", ("target_all",))]
