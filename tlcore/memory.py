"""Memory estimates: rows per forward pass from a budget, and a run's peak before it starts.

A forward pass at evaluation holds its float input and the activations of the
layers it runs through. At 224 px one LeNet row is about 3.6 MB of activations
(16 × 220 × 220 float32 after the first convolution alone is 3.1 MB), so the
fixed 1024 rows per evaluation pass that suits 28 px digits needs gigabytes
there. :func:`activation_bytes_per_row` measures a model's footprint per row
once (one forward of a single zero example, summing the bytes of every leaf
module's output through forward hooks; cached per model and input shape), and
:func:`rows_for_budget` turns a byte budget into rows per forward pass.

:func:`estimate_run_peak` adds up a run's resident data, its training step's
activations and one evaluation pass, and :func:`check_fits` refuses a run whose
estimate exceeds the memory available (``MemAvailable`` of ``/proc/meminfo``;
no check where that is unknown) with a :class:`~tlcore.errors.ResourceError`.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ResourceError

MAX_EVAL_ROWS = 1024                  # never more rows per forward pass than this
EVAL_MEMORY_BUDGET = 512 * 2 ** 20    # bytes of input + activations per evaluation forward pass
TRAIN_ACTIVATION_FACTOR = 2           # a training step keeps its activations and their gradients

_per_row_cache: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], int]]" = weakref.WeakKeyDictionary()


def rows_for_budget(budget_bytes: int, per_row_bytes: int, cap: int = MAX_EVAL_ROWS) -> int:
    """Rows per forward pass that fit ``budget_bytes``: ``clamp(budget // per_row, 1, cap)``."""
    if per_row_bytes <= 0:
        return cap
    return max(1, min(cap, budget_bytes // per_row_bytes))


def _tensor_bytes(out) -> int:
    if isinstance(out, torch.Tensor):
        return out.numel() * out.element_size()
    if isinstance(out, (tuple, list)):
        return sum(_tensor_bytes(o) for o in out)
    if isinstance(out, dict):
        return sum(_tensor_bytes(o) for o in out.values())
    return 0


@torch.no_grad()
def activation_bytes_per_row(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Bytes one input row costs a forward pass of ``model``: its float32 input plus the output of
    every leaf module (one eval-mode forward of a single zero example on the model's device, with
    forward hooks; an upper bound, as a no-grad pass frees most outputs as it goes). Cached per
    model and input shape; the model's mode and batch-norm statistics are left as they were."""
    shape = tuple(int(s) for s in input_shape)
    cached = _per_row_cache.setdefault(model, {})
    if shape in cached:
        return cached[shape]
    total = [0]

    def hook(_module, _inputs, output):
        total[0] += _tensor_bytes(output)

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros((1, *shape), dtype=torch.float32, device=device)
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    cached[shape] = total[0] + x.numel() * x.element_size()
    return cached[shape]


def eval_rows(model: nn.Module, input_shape: tuple[int, ...], budget_bytes: int = EVAL_MEMORY_BUDGET) -> int:
    """Rows per evaluation (or feature-extraction) forward pass of ``model`` within ``budget_bytes``."""
    return rows_for_budget(budget_bytes, activation_bytes_per_row(model, input_shape))


@dataclass(frozen=True)
class PeakEstimate:
    """A run's estimated memory peak, in bytes, and its parts."""

    data_bytes: int        # resident inputs and labels
    train_bytes: int       # one training step's activations (and their gradients)
    eval_bytes: int        # one evaluation forward pass

    @property
    def total(self) -> int:
        return self.data_bytes + self.train_bytes + self.eval_bytes


def estimate_run_peak(data_bytes: int, per_row_bytes: int, train_rows: int, eval_rows_: int) -> PeakEstimate:
    """The peak of a run holding ``data_bytes`` resident, training on ``train_rows`` rows per step
    (batch size × streams per step) and evaluating ``eval_rows_`` rows per forward pass:
    data + ``TRAIN_ACTIVATION_FACTOR`` × train_rows × per_row + eval_rows × per_row. It leaves out
    the model's parameters and optimizer state (small next to the activations of image models)."""
    return PeakEstimate(int(data_bytes), TRAIN_ACTIVATION_FACTOR * train_rows * per_row_bytes,
                        eval_rows_ * per_row_bytes)


def memory_available() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _mb(n: int) -> str:
    return f"{n / 2 ** 20:,.0f} MB"


def check_fits(estimate: PeakEstimate, available: int | None) -> None:
    """Raise :class:`ResourceError` when ``estimate.total`` exceeds ``available`` bytes (None: no check)."""
    if available is None or estimate.total <= available:
        return
    raise ResourceError(
        f"this run would need about {_mb(estimate.total)} of memory (resident data {_mb(estimate.data_bytes)}, "
        f"training step {_mb(estimate.train_bytes)}, evaluation pass {_mb(estimate.eval_bytes)}), "
        f"but only {_mb(available)} is available; use smaller images (resize=), fewer images (limit=), "
        "a smaller batch size, or data_mode='stream'")
