"""Gromov–Wasserstein correspondence between two domains from the structure within each (POT).

Relation-based transfer matches examples by their *relations*: two points
correspond when their distances to everything else agree, whatever input space
each lives in. The Gromov–Wasserstein (GW) coupling [Memoli2011]_ [Peyre2016]_

.. math:: \\gamma^\\star = \\arg\\min_{\\gamma \\in \\Pi(p, q)}
          \\sum_{i,j,k,l} \\big(C^s_{ik} - C^t_{jl}\\big)^2 \\gamma_{ij} \\gamma_{kl}

needs only a structure matrix per domain (:func:`structure_matrix`), so the two
domains may have different dimensions (a heterogeneous pair). The problem is
non-convex; :func:`gromov_coupling` runs POT's conditional-gradient solver
(``ot.gromov.gromov_wasserstein``) from several initial couplings and keeps the
lowest objective. Labels then travel through the coupling
(:func:`transport_labels`).

A structure with symmetries cannot tell the matching from its mirror images:
the built-in ``blobs`` ring (classes A B C A B C around a circle) is the same
after a turn by 60°, which moves every class, so the GW objective cannot prefer
the right labels there. Unequal class sizes break that symmetry (``blobs:prior=5``). The two
moons are symmetric too (a half turn about their centre swaps them), so GW on ``moons`` alone
often transports every label to the other class: the Inspect page's sorted coupling then shows
its blocks off the diagonal.

References
----------
.. [Memoli2011] F. Mémoli. "Gromov–Wasserstein distances and the metric approach to
   object matching". Foundations of Computational Mathematics 11, 2011.
.. [Peyre2016] G. Peyré, M. Cuturi, J. Solomon. "Gromov–Wasserstein averaging of kernel
   and distance matrices". ICML 2016.
.. [Flamary2021] R. Flamary et al. "POT: Python Optimal Transport". JMLR 22, 2021.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

STRUCTURES = ("euclidean", "knn_geodesic")


def structure_matrix(x: torch.Tensor, structure: str = "euclidean", neighbours: int = 10) -> torch.Tensor:
    """The (n, n) relation matrix of one domain's examples, scaled to mean 1 off the diagonal.

    ``"euclidean"``: pairwise Euclidean distances of the flattened inputs.
    ``"knn_geodesic"``: shortest-path lengths on the symmetrised ``neighbours``-nearest-
    neighbour graph (Isomap's geodesic distances, Tenenbaum et al., Science 2000); pairs
    in different connected components get the largest finite length times 2.
    Scaling by the mean makes the two domains comparable whatever their units.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
    z = x.reshape(len(x), -1).to(torch.float64)
    if len(z) < 2:
        raise ValueError(f"structure_matrix needs at least 2 examples, got {len(z)}")
    distances = torch.cdist(z, z)
    distances.fill_diagonal_(0.0)
    if structure == "knn_geodesic":
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import shortest_path

        k = min(neighbours, len(z) - 1)
        nearest = distances.topk(k + 1, largest=False).indices[:, 1:]
        graph = torch.zeros_like(distances)
        rows = torch.arange(len(z))[:, None].expand_as(nearest)
        graph[rows, nearest] = distances[rows, nearest]
        graph = torch.maximum(graph, graph.T)
        paths = torch.from_numpy(shortest_path(csr_matrix(graph.numpy()), directed=False))
        finite = torch.isfinite(paths)
        distances = torch.where(finite, paths, 2.0 * paths[finite].max())
    n = len(z)
    return distances / (distances.sum() / (n * (n - 1))).clamp_min(1e-12)


@dataclass(frozen=True)
class Coupling:
    """A GW coupling: ``plan`` (n_s, n_t) with rows summing to 1/n_s and columns to 1/n_t,
    its GW objective, and the objective of each start (the first from the product coupling)."""

    plan: torch.Tensor
    objective: float
    objectives: tuple[float, ...]


def gromov_coupling(source_structure: torch.Tensor, target_structure: torch.Tensor, restarts: int = 4,
                    seed: int = 0, max_iter: int = 200, threads: int | None = None) -> Coupling:
    """The GW coupling of two structure matrices with uniform marginals (POT's solver).

    The first start is POT's default (the product coupling p qᵀ); each further one starts
    from a seeded random permutation-like plan (``ot.emd`` on a random cost). The coupling
    with the lowest objective is returned. CPU, float64; the solver's matrix products run on
    ``threads`` BLAS threads (default: torch's intra-op thread count, which a run sets), because
    an unlimited OpenBLAS pool on a busy machine was measured 10-17× slower than one thread.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads or torch.get_num_threads(), user_api="blas"):
        return _gromov_coupling(source_structure, target_structure, restarts, seed, max_iter)


def _gromov_coupling(source_structure: torch.Tensor, target_structure: torch.Tensor, restarts: int,
                     seed: int, max_iter: int) -> Coupling:
    import numpy as np
    import ot

    if restarts < 1:
        raise ValueError(f"restarts must be at least 1, got {restarts}")
    cs = source_structure.detach().to("cpu", torch.float64).numpy()
    ct = target_structure.detach().to("cpu", torch.float64).numpy()
    p, q = ot.unif(len(cs)), ot.unif(len(ct))
    rng = np.random.default_rng(seed)
    best, objectives = None, []
    for start in range(restarts):
        initial = None if start == 0 else ot.emd(p, q, rng.random((len(cs), len(ct))))
        plan, log = ot.gromov.gromov_wasserstein(cs, ct, p, q, loss_fun="square_loss", log=True,
                                                 G0=initial, max_iter=max_iter)
        objective = float(log["gw_dist"])
        objectives.append(objective)
        if best is None or objective < best[1]:
            best = (plan, objective)
    return Coupling(plan=torch.from_numpy(best[0]), objective=best[1], objectives=tuple(objectives))


def transport_labels(plan: torch.Tensor, source_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    r"""Soft target labels carried through a coupling (label propagation by transport).

    .. math:: \hat y_j = \frac{\sum_i \gamma_{ij}\, e_{y^s_i}}{\sum_i \gamma_{ij}}

    (Redko et al., AISTATS 2019, "Optimal transport for multi-source domain adaptation under
    target shift", eq. 6). Returns (n_t, C) rows of class probabilities; a target column
    with no mass gets the uniform distribution.
    """
    if plan.dim() != 2 or plan.shape[0] != len(source_labels):
        raise ValueError(f"plan of shape {tuple(plan.shape)} for {len(source_labels)} source labels")
    onehot = torch.nn.functional.one_hot(source_labels.to(torch.int64).cpu(), num_classes).to(plan.dtype)
    mass = plan.T @ onehot
    total = mass.sum(1, keepdim=True)
    uniform = torch.full_like(mass, 1.0 / num_classes)
    return torch.where(total > 0, mass / total.clamp_min(1e-300), uniform)


def subsample(n: int, limit: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted row indices: all ``n`` rows when ``n <= limit``, else a seeded random ``limit`` of them."""
    if n <= limit:
        return torch.arange(n)
    return torch.sort(torch.randperm(n, generator=generator)[:limit]).values


def nearest_rows(queries: torch.Tensor, references: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For each query row, the index of its nearest reference row (Euclidean, flattened)."""
    q = queries.reshape(len(queries), -1).to(torch.float64)
    r = references.reshape(len(references), -1).to(torch.float64)
    return torch.cat([torch.cdist(q[s:s + chunk], r).argmin(1) for s in range(0, len(q), chunk)]) \
        if len(q) else torch.zeros(0, dtype=torch.int64)


__all__ = ["STRUCTURES", "structure_matrix", "Coupling", "gromov_coupling", "transport_labels", "subsample",
           "nearest_rows"]
