"""Look inside a domain pair before training and inside a trained run after it.

Pure helpers for the app's Data and Inspect pages (and for scripts): the domain
gap on raw inputs or on learned features, example indices per class, the
features and predictions of a trained model on both test sets, a decision grid
for 2-D inputs, and the ``source_only`` reference run that an adapted run is
compared with. Nothing here trains, plots or prints; every draw is seeded.

Streamed domains (inputs that are :class:`~tlcore.data.lazy.LazyImages`,
decoded from files when read) work everywhere here: raw-input gaps and clouds
decode only the seeded subset of at most ``max_points`` rows they use, and a
trained run's features come from one ordered pass over each test split through
the run's DataLoader.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass

import numpy as np
import torch

from .config import RunConfig
from .data.domain import DomainPair, as_float
from .embed import project_pca
from .metrics import confusion_matrix, mmd2, mmd_permutation_test, per_class_accuracy, proxy_a_distance
from .runs import RunRecord, RunStore

__all__ = [
    "GapReport",
    "domain_gap",
    "input_gap",
    "Cloud",
    "input_cloud",
    "class_examples",
    "DecisionGrid",
    "decision_grid",
    "RunInspection",
    "inspect_trainer",
    "source_only_config",
    "find_source_only",
]

SOURCE, TARGET = 0, 1  # values of the ``domain`` arrays below


# --- domain gap --------------------------------------------------------------------------

@dataclass(frozen=True)
class GapReport:
    """How far apart two samples are.

    ``mmd2``: unbiased multi-kernel MMD² (:func:`tlcore.metrics.mmd2`);
    ``p_value``: its permutation-test p-value, or None when no test was run;
    ``pad``: proxy A-distance in [0, 2] and ``domain_accuracy`` the held-out
    accuracy of the linear domain classifier behind it (0.5 = indistinguishable);
    ``n_source``, ``n_target``: the numbers of points used; ``of_source``, ``of_target``: the
    numbers they were drawn from (equal when nothing was subsampled; 0 when unknown).
    """

    mmd2: float
    p_value: float | None
    pad: float
    domain_accuracy: float
    n_source: int
    n_target: int
    of_source: int = 0
    of_target: int = 0

    @property
    def subsampled(self) -> bool:
        return self.n_source < self.of_source or self.n_target < self.of_target


def _rows(x) -> torch.Tensor:
    x = as_float(torch.as_tensor(x))
    return x.reshape(len(x), -1)


def _subsample(n: int, max_points: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted row indices: all ``n`` rows, or ``max_points`` of them drawn without replacement."""
    if n <= max_points:
        return torch.arange(n)
    return torch.sort(torch.randperm(n, generator=generator)[:max_points]).values


GAP_POINTS = 500  # per domain: the app's and `tlcore gap`'s default, so both measure the same sample


def domain_gap(source, target, seed: int = 0, max_points: int = GAP_POINTS, num_permutations: int = 200) -> GapReport:
    """MMD² (with a permutation-test p-value when ``num_permutations > 0``) and the proxy
    A-distance between two samples of any shape (rows are flattened).

    Each side is subsampled to at most ``max_points`` rows (seeded), which
    bounds the cost: the test builds one ``(2·max_points)²`` kernel matrix.
    """
    xs, xt = _rows(source), _rows(target)
    generator = torch.Generator().manual_seed(seed)
    xs = xs[_subsample(len(xs), max_points, generator)]
    xt = xt[_subsample(len(xt), max_points, generator)]
    if num_permutations > 0:
        test = mmd_permutation_test(xs, xt, num_permutations=num_permutations, max_points=max_points, seed=seed)
        value, p_value = test.mmd2, test.p_value
    else:
        value, p_value = mmd2(xs, xt, seed=seed), None
    pad = proxy_a_distance(xs, xt, seed=seed)
    return GapReport(mmd2=value, p_value=p_value, pad=pad.pad, domain_accuracy=pad.domain_accuracy,
                     n_source=len(xs), n_target=len(xt), of_source=len(source), of_target=len(target))


def input_gap(pair: DomainPair, seed: int = 0, max_points: int = GAP_POINTS,
              num_permutations: int = 200) -> GapReport:
    """The gap between the raw source and target training inputs, before any training.

    The seeded subsample of at most ``max_points`` rows per domain is drawn
    here, exactly as :func:`domain_gap` would draw it, so that a streamed domain
    decodes only those rows. The app's Data page and ``tlcore gap`` both call this
    with the same defaults, so the same pair and seed give the same numbers in both.
    """
    generator = torch.Generator().manual_seed(seed)
    xs, xt = pair.source.x_train, pair.target.x_train
    keep_source = _subsample(len(xs), max_points, generator)
    keep_target = _subsample(len(xt), max_points, generator)
    report = domain_gap(xs[keep_source], xt[keep_target], seed=seed, max_points=max_points,
                        num_permutations=num_permutations)
    return dataclasses.replace(report, of_source=len(xs), of_target=len(xt))


# --- point clouds ------------------------------------------------------------------------

@dataclass(frozen=True)
class Cloud:
    """Points of both domains in one array, with what each point is.

    ``points``: (N, D) float32; ``domain``: (N,) 0 = source, 1 = target;
    ``label``: (N,) class index; ``index``: (N,) row in that domain's split, so
    that a selected point can be traced back to its input.
    """

    points: np.ndarray
    domain: np.ndarray
    label: np.ndarray
    index: np.ndarray


def input_cloud(pair: DomainPair, max_points: int = 500, seed: int = 0, split: str = "train",
                project: bool = True) -> Cloud:
    """Raw inputs of both domains (at most ``max_points`` each, seeded), for a scatter plot.

    With ``project``, inputs wider than two dimensions are projected on their
    two leading principal components (pooled over both domains); 2-D inputs
    are returned as they are.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for code, domain in ((SOURCE, pair.source), (TARGET, pair.target)):
        x, y = getattr(domain, f"x_{split}"), getattr(domain, f"y_{split}")
        keep = _subsample(len(y), max_points, generator)
        parts.append((code, _rows(x[keep]).numpy(), y[keep].numpy(), keep.numpy()))
    points = np.concatenate([p[1] for p in parts]).astype(np.float32)
    if project and points.shape[1] > 2:
        points = project_pca(points)
    return Cloud(points=points,
                 domain=np.concatenate([np.full(len(p[2]), p[0], dtype=np.int64) for p in parts]),
                 label=np.concatenate([p[2] for p in parts]).astype(np.int64),
                 index=np.concatenate([p[3] for p in parts]).astype(np.int64))


def class_examples(labels, num_classes: int, per_class: int, seed: int = 0) -> list[list[int]]:
    """Up to ``per_class`` row indices of each class (seeded draw, sorted), one list per class."""
    labels = torch.as_tensor(labels).reshape(-1)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        pick = members[torch.randperm(len(members), generator=generator)[:per_class]]
        out.append(sorted(pick.tolist()))
    return out


# --- decision boundaries -----------------------------------------------------------------

@dataclass(frozen=True)
class DecisionGrid:
    """A model's class probabilities over a regular grid of the 2-D input plane.

    ``xs`` (W,) and ``ys`` (H,) are the grid coordinates; ``proba`` (H, W, C)
    the softmax probabilities at ``(xs[j], ys[i])``; ``predicted`` (H, W) the arg max.
    """

    xs: np.ndarray
    ys: np.ndarray
    proba: np.ndarray
    predicted: np.ndarray


def grid_bounds(points, margin: float = 0.1) -> tuple[float, float, float, float]:
    """``(x_min, x_max, y_min, y_max)`` around 2-D ``points``, widened by ``margin`` of the span."""
    p = _rows(points).numpy()
    if p.shape[1] != 2:
        raise ValueError(f"a decision grid needs 2-D inputs, got {p.shape[1]}-D")
    lo, hi = p.min(axis=0), p.max(axis=0)
    pad = np.maximum(hi - lo, 1e-6) * margin
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


@torch.no_grad()
def decision_grid(model, bounds: tuple[float, float, float, float], resolution: int = 100,
                  device: torch.device | str = "cpu") -> DecisionGrid:
    """Evaluate ``model`` (eval mode) on a ``resolution × resolution`` grid over ``bounds``
    (see :func:`grid_bounds`); what TensorFlow Playground draws behind the points."""
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    x0, x1, y0, y1 = bounds
    xs = np.linspace(x0, x1, resolution, dtype=np.float32)
    ys = np.linspace(y0, y1, resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)  # (H, W), rows follow ys
    inputs = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1)).to(device)
    was_training = model.training
    model.eval()
    proba = torch.softmax(model(inputs).float(), dim=1).cpu().numpy()
    model.train(was_training)
    proba = proba.reshape(resolution, resolution, -1)
    return DecisionGrid(xs=xs, ys=ys, proba=proba, predicted=proba.argmax(axis=2))


# --- a trained run -------------------------------------------------------------------------

@dataclass(frozen=True)
class RunInspection:
    """What a trained model does on the source and target test sets.

    ``features`` (N, D) are penultimate-layer features of at most
    ``max_points`` test examples per domain, described row by row by
    ``domain``, ``label``, ``prediction`` and ``index`` (row in that domain's
    test split). ``gap`` is MMD² and the proxy A-distance between the source
    and target features. ``confusion`` (rows: true, columns: predicted) and
    ``per_class_accuracy`` cover the whole target test set. ``grid`` is the
    decision grid for 2-D inputs (None for images); ``importance_weights`` the
    per-example weights of the source training set when the strategy made some.
    """

    class_names: tuple[str, ...]
    features: np.ndarray
    domain: np.ndarray
    label: np.ndarray
    prediction: np.ndarray
    index: np.ndarray
    gap: GapReport
    source_accuracy: float
    target_accuracy: float
    confusion: np.ndarray
    per_class_accuracy: list[float]
    grid: DecisionGrid | None
    importance_weights: np.ndarray | None


def inspect_trainer(trainer, artifacts: dict | None = None, seed: int = 0, max_points: int = 2000,
                    gap_points: int = 1000, grid_bounds_: tuple[float, float, float, float] | None = None,
                    grid_resolution: int = 100) -> RunInspection:
    """Inspect a trained :class:`~tlcore.train.Trainer` (e.g. from :func:`tlcore.api.load_trained`).

    For 2-D inputs the decision grid covers ``grid_bounds_`` (default: around
    every source and target point, so that runs on the same pair share it).
    """
    pair = trainer.pair
    if pair.heterogeneous:
        from .errors import TransferLabError
        raise TransferLabError(
            f"{pair.source.name} → {pair.target.name} is a heterogeneous pair: the model takes target inputs only, "
            "so the source-versus-target feature views do not apply; the run's results hold its target accuracy "
            "and the transported-label accuracy")
    source, target = trainer.ctx.data["source_test"], trainer.ctx.data["target_test"]
    try:
        fs, ps = (t.cpu() for t in trainer.predict_split("source_test"))
        ft, pt = (t.cpu() for t in trainer.predict_split("target_test"))
    finally:
        trainer.release_workers()
    ys, yt = source.y.cpu(), target.y.cpu()
    generator = torch.Generator().manual_seed(seed)
    ks = _subsample(len(ys), max_points, generator)
    kt = _subsample(len(yt), max_points, generator)
    gap = domain_gap(fs[ks], ft[kt], seed=seed, max_points=gap_points, num_permutations=0)
    num_classes = len(pair.class_names)
    grid = None
    if pair.kind == "vector" and pair.input_shape == (2,):
        if grid_bounds_ is None:
            grid_bounds_ = grid_bounds(torch.cat([pair.source.x_train, pair.source.x_test,
                                                  pair.target.x_train, pair.target.x_test]))
        grid = decision_grid(trainer.model, grid_bounds_, grid_resolution, device=trainer.device)
    weights = (artifacts or {}).get("importance_weights")
    return RunInspection(
        class_names=tuple(pair.class_names),
        features=torch.cat([fs[ks], ft[kt]]).numpy().astype(np.float32),
        domain=np.concatenate([np.full(len(ks), SOURCE), np.full(len(kt), TARGET)]).astype(np.int64),
        label=torch.cat([ys[ks], yt[kt]]).numpy().astype(np.int64),
        prediction=torch.cat([ps[ks], pt[kt]]).numpy().astype(np.int64),
        index=torch.cat([ks, kt]).numpy().astype(np.int64),
        gap=gap,
        source_accuracy=float((ps == ys).float().mean()),
        target_accuracy=float((pt == yt).float().mean()),
        confusion=confusion_matrix(pt, yt, num_classes).numpy(),
        per_class_accuracy=per_class_accuracy(pt, yt, num_classes),
        grid=grid,
        importance_weights=None if weights is None else np.asarray(weights, dtype=np.float32),
    )


# --- the source-only reference -------------------------------------------------------------

def source_only_config(config: RunConfig) -> RunConfig:
    """The run that ``config`` is compared with on the Inspect page: the same pair, budget,
    seed and schedule, trained on the source alone (no adaptation)."""
    return config.replace(strategy="source_only", params={})


def find_source_only(store: RunStore, config: RunConfig, status: str | None = "done") -> RunRecord | None:
    """The newest stored run that computes ``source_only_config(config)`` (with ``status``), or None."""
    from .api import result_key

    return store.find_run(result_key(source_only_config(config)), status=status)


# --- relations: the GW coupling and RKD's distance matrices -------------------------------------------

@dataclass(frozen=True)
class CouplingView:
    """A stored Gromov–Wasserstein coupling, ready to draw.

    ``plan`` is the coupling with its rows (source examples) sorted by source label and its
    columns (target examples) by true target label, so a correct matching shows as blocks on
    the diagonal. ``matches`` pairs each subsampled target training row with the source row it
    sends most mass to (indices into the training splits); ``source_points`` and
    ``target_points`` are the inputs of those rows when both domains are 2-D (lines between
    matched points), else None. ``transported_accuracy`` counts every target training row whose
    transported label is its true label (known to the lab; never used in training).
    """

    plan: np.ndarray
    source_labels: np.ndarray
    target_labels: np.ndarray
    matches: np.ndarray
    source_points: np.ndarray | None
    target_points: np.ndarray | None
    transported_accuracy: float
    per_class_transported_accuracy: list[float]


def coupling_view(pair: DomainPair, artifacts: dict) -> CouplingView | None:
    """The coupling a ``gromov`` run stored in its artifacts (None for runs without one)."""
    if "gw_plan" not in artifacts:
        return None
    plan = torch.as_tensor(artifacts["gw_plan"]).double()
    source_rows = torch.as_tensor(artifacts["gw_source_rows"], dtype=torch.int64)
    target_rows = torch.as_tensor(artifacts["gw_target_rows"], dtype=torch.int64)
    ys, yt = pair.source.y_train[source_rows], pair.target.y_train[target_rows]
    row_order, column_order = torch.argsort(ys, stable=True), torch.argsort(yt, stable=True)
    transported = torch.as_tensor(artifacts["transported_labels"], dtype=torch.int64)
    truth = pair.target.y_train
    num_classes = len(pair.class_names)
    matches = torch.stack([source_rows[plan.argmax(0)], target_rows], 1)
    two_d = pair.source.input_shape == (2,) and pair.target.input_shape == (2,)
    return CouplingView(
        plan=plan[row_order][:, column_order].numpy().astype(np.float32),
        source_labels=ys[row_order].numpy(), target_labels=yt[column_order].numpy(),
        matches=matches.numpy(),
        source_points=pair.source.x_train[matches[:, 0]].numpy() if two_d else None,
        target_points=pair.target.x_train[matches[:, 1]].numpy() if two_d else None,
        transported_accuracy=float((transported == truth).double().mean()),
        per_class_transported_accuracy=per_class_accuracy(transported, truth, num_classes),
    )


@dataclass(frozen=True)
class DistanceMatrices:
    """RKD's teacher and student on the same target test examples (sorted by class): their
    pairwise feature distances, each over its mean (the scale RKD compares, Park et al. 2019)."""

    teacher: np.ndarray
    student: np.ndarray
    labels: np.ndarray
    correlation: float


@torch.no_grad()
def rkd_distance_matrices(trainer, artifacts: dict, per_class: int = 8, seed: int = 0) -> DistanceMatrices | None:
    """Teacher and student distance matrices of an ``rkd`` run (None for runs without a stored teacher)."""
    import copy

    state = artifacts.get("teacher_state")
    if state is None:
        return None
    teacher = copy.deepcopy(trainer.model)
    teacher.load_state_dict(state)
    teacher.eval()
    target = trainer.pair.target
    rows = [r for group in class_examples(target.y_test, target.num_classes, per_class, seed) for r in group]
    rows = torch.tensor(rows, dtype=torch.int64)
    x = as_float(target.x_test[rows]).to(trainer.device)
    was_training = trainer.model.training
    trainer.model.eval()
    matrices = []
    for model in (teacher, trainer.model):
        features = model.features(x).double().cpu()
        distances = torch.cdist(features, features)
        off = ~torch.eye(len(rows), dtype=torch.bool)
        matrices.append(distances / distances[off].mean().clamp_min(1e-12))
    trainer.model.train(was_training)
    off = ~torch.eye(len(rows), dtype=torch.bool)
    correlation = float(torch.corrcoef(torch.stack([matrices[0][off], matrices[1][off]]))[0, 1])
    return DistanceMatrices(teacher=matrices[0].numpy().astype(np.float32),
                            student=matrices[1].numpy().astype(np.float32),
                            labels=target.y_test[rows].numpy(), correlation=correlation)
