"""Gromov–Wasserstein correspondence (relation-based transfer): match source and target examples
by the structure within each domain, carry the source labels through the coupling, and train the
target model on them (fine-tuned with the label budget when it has any).

Only the relations inside each domain are compared, never a source input with a target input, so
the domains may live in different input spaces (a heterogeneous pair such as
``blobs:prior=5`` → ``blobs:prior=5,embed=20``). The model takes target inputs only. See
:mod:`tlcore.transport` for the solver and its limits (symmetric structures).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..config import spec
from ..data.domain import as_float
from ..data.shifts import derive_generator, derive_seed
from ..transport import (STRUCTURES, gromov_coupling, nearest_rows, structure_matrix, subsample,
                         transport_labels)
from .base import Phase, Strategy, forward_streams, task_loss

#: The subsampling point: above this many examples per domain, the GW problem is solved on a
#: seeded random subsample. benchmarks/bench_gromov.py (one CPU thread, one start, 2-D vs 20-D
#: blobs) measured 0.17 s at n = 250, 1.2 s at 500, 32 s at 1000 and 138 s at 2000 (time ~ n^3.2).
DEFAULT_MAX_POINTS = 500
BENCHMARK_NOTE = "benchmarks/bench_gromov.py: one GW solve took 1.2 s at n=500 and 32 s at n=1000 on one CPU thread"


@dataclass(frozen=True)
class GromovConfig:
    max_points: int = spec(DEFAULT_MAX_POINTS, "examples per domain in the Gromov-Wasserstein problem; above it, a "
                                               "seeded random subsample (the solve time grows about as n³; the "
                                               "other target examples take the label of their nearest subsampled one)",
                           10, 5000)
    restarts: int = spec(4, "GW solves from different initial couplings (the problem is non-convex); the lowest "
                            "objective is kept", 1, 64)
    structure: str = spec("euclidean", "each domain's relation matrix: euclidean distances of the inputs, or "
                                       "geodesic distances on a k-nearest-neighbour graph", choices=STRUCTURES)
    neighbours: int = spec(10, "k of the k-nearest-neighbour graph (knn_geodesic only)", 2, 200)
    label_weight: float = spec(1.0, "weight of the cross-entropy on the labelled target examples (when the budget "
                                    "has any) against the loss on the transported labels", 0.0, 100.0)


def _index_device(x) -> torch.device:
    """Where row indices into ``x`` must live (a device tensor's device; CPU for streamed inputs)."""
    return x.device if isinstance(x, torch.Tensor) else torch.device("cpu")


def soft_cross_entropy(logits: torch.Tensor, soft_labels: torch.Tensor) -> torch.Tensor:
    r"""Cross-entropy with soft targets, :math:`-\frac1n \sum_j \sum_c \hat y_{jc} \log p_c(x_j)`."""
    return -(soft_labels * torch.log_softmax(logits.float(), dim=1)).sum(1).mean()


class Gromov(Strategy):
    name = "gromov"
    summary = ("Relation-based: a Gromov-Wasserstein coupling (POT) matches source and target examples by the "
               "distances within each domain alone, the source labels travel through it, and the target model "
               "trains on them; works when the domains share no input space.")
    Config = GromovConfig
    heterogeneous = True

    def __init__(self, params):
        super().__init__(params)
        self.soft_labels: torch.Tensor | None = None
        self.report: dict[str, Any] = {}
        self._coupling = None
        self._rows: tuple[torch.Tensor, torch.Tensor] | None = None

    def prepare(self, ctx):
        """Solve the GW problem once, before the first step, and transport the labels."""
        p: GromovConfig = self.params
        seed = ctx.config.seed
        ys, yt = ctx.data["source"].y.cpu(), ctx.data["target"].y.cpu()
        source_rows = subsample(len(ys), p.max_points, derive_generator(seed, "gromov", "source rows"))
        target_rows = subsample(len(yt), p.max_points, derive_generator(seed, "gromov", "target rows"))
        # Only the subsampled rows are read whole (indexing streamed data decodes just those rows).
        xs, xt_sub = (as_float(ctx.data[role].x[rows.to(_index_device(ctx.data[role].x))]).cpu()
                      for role, rows in (("source", source_rows), ("target", target_rows)))
        coupling = gromov_coupling(structure_matrix(xs, p.structure, p.neighbours),
                                   structure_matrix(xt_sub, p.structure, p.neighbours),
                                   restarts=p.restarts, seed=derive_seed(seed, "gromov", "starts"))
        num_classes = len(ctx.pair.class_names)
        transported = transport_labels(coupling.plan, ys[source_rows], num_classes)
        # Target rows outside the subsample take the transported label of their nearest subsampled row
        # (the target read chunk by chunk, as the loop reads it).
        nearest = torch.cat([nearest_rows(chunk.cpu(), xt_sub) for chunk in ctx.inputs("target")])
        soft = transported[nearest]
        self.soft_labels = soft.to(ctx.device, torch.float32)
        # The target's true labels are known to the lab, for evaluation only: how many arrived right.
        self.report = {
            "transported_label_accuracy": float((soft.argmax(1) == yt).double().mean()),
            "gw_objective": coupling.objective,
            "gw_points_source": float(len(source_rows)),
            "gw_points_target": float(len(target_rows)),
        }
        self._coupling = coupling
        self._rows = (source_rows, target_rows)

    def notes(self, ctx):
        p: GromovConfig = self.params
        sizes = {role: len(ctx.data[role]) for role in ("source", "target")}
        used = {role: min(n, p.max_points) for role, n in sizes.items()}
        subsampled = [role for role in sizes if sizes[role] > p.max_points]
        how = (f"{' and '.join(f'{r} {sizes[r]} → {used[r]}' for r in subsampled)} by a seeded random subsample; "
               "the other target rows take the transported label of their nearest subsampled row"
               if subsampled else "no subsample needed")
        return [f"gromov: Gromov-Wasserstein coupling on at most max_points={p.max_points} examples per domain "
                f"(the subsampling point; {BENCHMARK_NOTE}): {how}; {p.restarts} start(s), "
                f"{p.structure} structure"]

    def phases(self, ctx):
        labelled = ctx.pair.target_labels_per_class > 0
        streams = ("target", "target_labelled") if labelled else ("target",)

        def losses(batch, c):
            out = forward_streams(c.model, batch, streams)
            terms = {"task": soft_cross_entropy(out["target"][1], self.soft_labels[batch["target"].index])}
            if labelled:
                terms["labelled"] = task_loss(out, batch, ("target_labelled",))
            return terms
        return [Phase("train", streams, losses)]

    def weights(self, ctx):
        return {"labelled": self.params.label_weight}

    def eval_extras(self, ctx, source_features, target_features):
        return dict(self.report)

    def artifacts(self):
        """The coupling on the subsampled rows (for Inspect's heatmap and matching lines) and the
        transported labels of every target training row."""
        if self.soft_labels is None:
            return {}
        source_rows, target_rows = self._rows
        return {"gw_plan": self._coupling.plan.to(torch.float32),
                "gw_source_rows": source_rows.tolist(), "gw_target_rows": target_rows.tolist(),
                "transported_labels": self.soft_labels.argmax(1).cpu().tolist(),
                "gw_objectives": list(self._coupling.objectives)}
