"""What a strategy supplies to the one training loop (:mod:`tlcore.train`).

A strategy never owns a loop. It declares its hyperparameters (``Config``),
extra modules (e.g. a domain discriminator), one or more :class:`Phase` s
(which data streams a step draws and which parameters train), and the raw loss
terms of one step. The loop minimises ``sum(weights[name] * term)``.

Streams a phase can draw (the loop hands a step's rows of each as a
:class:`Stream` on the device, whether the data is resident and batched by
indexing or streamed through a DataLoader; see :mod:`tlcore.train`):

* ``source``: labelled source training examples;
* ``target``: target training inputs (labels are not used);
* ``target_labelled``: the ``k`` labelled target examples per class;
* ``target_all``: every target training example with its label (oracle only).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from ..config import RunConfig
    from ..data.domain import DomainPair
    from ..models import SplitModel

STREAMS = ("source", "target", "target_labelled", "target_all")

# What a strategy is, for every grouping the app, the CLI and the sweeps make (derived from the
# registry, never from names):
#   baseline:  trains on the source alone, no adaptation (the lower reference adaptation must beat);
#   transfer:  uses the source and adapts to the target (target inputs, target labels or both);
#   reference: never sees the source (target_only: the NTG baseline; oracle: the upper reference).
ROLES = ("baseline", "transfer", "reference")


@dataclass(frozen=True)
class Stream:
    """One minibatch of a stream: inputs (float, on the device), labels and row indices."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor


@dataclass
class StreamData:
    """One stream's inputs and labels.

    Resident runs hold ``x`` (float32 or uint8) on the device. Streamed runs hold
    it where the loader workers read it (:class:`tlcore.train.LoaderBatches`): a CPU
    tensor or :class:`~tlcore.data.lazy.LazyImages` (decoded when read; indexing it
    gives decoded rows). ``y`` is on the device either way.
    """

    x: Any
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Context:
    """What a strategy can see: the pair, the model, resident data and the schedule."""

    config: "RunConfig"
    params: Any
    pair: "DomainPair"
    model: "SplitModel"
    device: torch.device
    data: dict[str, StreamData]
    modules: nn.ModuleDict = field(default_factory=nn.ModuleDict)
    step: int = 0
    total_steps: int = 1
    steps_per_epoch: int = 1
    batches: Any = None

    @property
    def progress(self) -> float:
        """Fraction of the run's steps done, in [0, 1] (drives ramps such as DANN's)."""
        return min(1.0, self.step / max(1, self.total_steps))

    @property
    def streamed(self) -> bool:
        """Whether the data streams through DataLoader workers (``data[n].x`` is then not on the device)."""
        return getattr(self.batches, "mode", "resident") == "stream"

    def inputs(self, name: str) -> Iterator[torch.Tensor]:
        """Every input of stream ``name`` (e.g. ``"source"``) in row order, as float chunks on the
        device, whether the data is resident or streamed: for once-per-run work such as
        :meth:`Strategy.prepare` that needs all of a stream."""
        return self.batches.inputs(name)


Batch = Mapping[str, Stream]
LossFn = Callable[[Batch, "Context"], dict[str, torch.Tensor]]


@dataclass
class Phase:
    """A stretch of training with one loss function.

    ``share`` is this phase's fraction of the run's step budget; the shares of
    a strategy's phases sum to 1. ``on_start`` runs before the phase's first
    step (e.g. to freeze blocks); the loop then builds a fresh optimiser over
    the parameters that still require grad, at ``lr * lr_scale``.
    """

    name: str
    streams: tuple[str, ...]
    losses: LossFn
    share: float = 1.0
    lr_scale: float = 1.0
    on_start: Callable[["Context"], None] | None = None


@dataclass(frozen=True)
class NoConfig:
    """This strategy has no hyperparameters."""


class Strategy:
    """Base class; subclasses set the class attributes and override what they need."""

    name: ClassVar[str]
    summary: ClassVar[str]              # one line, shown in the app and the CLI
    Config: ClassVar[type] = NoConfig
    role: ClassVar[str] = "transfer"    # one of ROLES
    # The streams its phases may draw (``target_labelled`` joins the supervised streams of most
    # strategies whenever the run has a label budget; see :func:`supervised_streams`).
    streams: ClassVar[frozenset[str]] = frozenset({"source", "target", "target_labelled"})
    needs_target_labels: ClassVar[bool] = False
    # Whether it accepts a heterogeneous pair (source and target in different input spaces, e.g.
    # blobs -> blobs:embed=20): it never feeds source inputs to the model, which takes target inputs.
    # Every other strategy gets RepresentationMismatchError for such a pair.
    heterogeneous: ClassVar[bool] = False
    # The model that ``model="auto"`` builds for this strategy, by input kind, where it is not the
    # usual default (tlcore.models.DEFAULT_MODEL): e.g. AdaBN needs batch norm.
    auto_models: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def uses_source(cls) -> bool:
        return "source" in cls.streams

    @classmethod
    def adapts(cls) -> bool:
        """Whether it uses the unlabelled target inputs (domain adaptation proper)."""
        return "target" in cls.streams

    def __init__(self, params: Any):
        self.params = params

    # --- what the loop asks for -------------------------------------------------
    def extra_modules(self, ctx: "Context") -> nn.ModuleDict:
        """Modules trained with the model (their parameters join the optimiser)."""
        return nn.ModuleDict()

    def phases(self, ctx: "Context") -> list[Phase]:
        raise NotImplementedError

    def weights(self, ctx: "Context") -> dict[str, float]:
        """Loss weights at the current step (terms missing here weigh 1)."""
        return {}

    def prepare(self, ctx: "Context") -> None:
        """Once per run, before the first step (e.g. estimate importance weights).

        ``ctx.data[name].x`` may be streamed (not on the device; indexing decodes rows):
        iterate a whole stream with ``ctx.inputs(name)``."""

    def finish(self, ctx: "Context") -> None:
        """Once per run, after the last training step and before the final evaluation (not
        after a stop), e.g. AdaBN's re-estimation of batch-norm statistics on the target."""

    def step_extras(self, ctx: "Context") -> dict[str, float]:
        """Scheduled scalars to log with a step event (e.g. a ramped coefficient)."""
        return {}

    def eval_extras(self, ctx: "Context", source_features: torch.Tensor,
                    target_features: torch.Tensor) -> dict[str, float]:
        """Extra evaluation scalars from held-out features (e.g. domain accuracy)."""
        return {}

    def notes(self, ctx: "Context") -> list[str]:
        """Sentences for the run record on how the strategy uses the data (e.g. a subsample), known
        before training starts."""
        return []

    def artifacts(self) -> dict[str, Any]:
        """Per-run outputs to keep with the checkpoint (lists of floats), e.g. importance weights."""
        return {}


# --- pieces shared by several strategies -------------------------------------------

def supervised_streams(ctx: "Context") -> tuple[str, ...]:
    """The source, plus the labelled target examples when the budget has any."""
    return ("source", "target_labelled") if ctx.pair.target_labels_per_class > 0 else ("source",)


def forward_streams(model, batch: Batch, names: tuple[str, ...]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """One forward pass over several streams at once (one batch, so batch-norm sees
    source and target together, as DANN and DAN do); returns features and logits per stream."""
    xs = [batch[n].x for n in names]
    features, logits = model.forward_with_features(torch.cat(xs) if len(xs) > 1 else xs[0])
    out, start = {}, 0
    for n, x in zip(names, xs):
        out[n] = (features[start:start + len(x)], logits[start:start + len(x)])
        start += len(x)
    return out


def task_loss(outputs: Mapping[str, tuple[torch.Tensor, torch.Tensor]], batch: Batch,
              names: tuple[str, ...], sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over the labelled streams in ``names`` (pooled; optional per-example
    weights for the first stream, used by importance weighting)."""
    if len(names) == 1 and sample_weight is None:  # the common case, in the fewest ops
        return F.cross_entropy(outputs[names[0]][1].float(), batch[names[0]].y)
    losses, counts = [], 0
    for i, n in enumerate(names):
        logits = outputs[n][1].float()
        ce = F.cross_entropy(logits, batch[n].y, reduction="none")
        if i == 0 and sample_weight is not None:
            ce = ce * sample_weight
        losses.append(ce.sum())
        counts += len(ce)
    return torch.stack(losses).sum() / counts


def cross_entropy_phase(name: str, streams: tuple[str, ...], **kw) -> Phase:
    """A phase that minimises plain cross-entropy over ``streams``."""
    def losses(batch: Batch, ctx: "Context") -> dict[str, torch.Tensor]:
        outputs = forward_streams(ctx.model, batch, streams)
        return {"task": task_loss(outputs, batch, streams)}
    return Phase(name, streams, losses, **kw)


def aligned_phase(align: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], term: str, ctx: "Context") -> Phase:
    """The task loss on the labelled streams plus an alignment term between source
    and target features (MMD, CORAL)."""
    supervised = supervised_streams(ctx)
    streams = supervised + ("target",)

    def losses(batch: Batch, c: "Context") -> dict[str, torch.Tensor]:
        out = forward_streams(c.model, batch, streams)
        return {"task": task_loss(out, batch, supervised),
                term: align(out["source"][0].float(), out["target"][0].float())}
    return Phase("adapt", streams, losses)
