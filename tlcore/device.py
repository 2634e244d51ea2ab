"""Device choice, CPU thread policy, and the batch size that fits a GPU."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch

from .errors import DeviceError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def select_device(requested: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu. An explicit device that this
    machine lacks is a :class:`DeviceError`, never a silent fallback."""
    req = (requested or "auto").strip().lower()
    if req == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if req == "cpu":
        return torch.device("cpu")
    if req == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' was requested but Apple's Metal backend is not available here; "
                              "use --device auto or --device cpu")
        return torch.device("mps")
    if req == "cuda" or req.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {requested!r} was requested but no CUDA GPU is available "
                              "(torch.cuda.is_available() is False); use --device auto or --device cpu")
        try:
            dev = torch.device(req)
        except RuntimeError as exc:
            raise DeviceError(f"malformed device {requested!r}: {exc}") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {requested!r} does not exist: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return dev
    raise DeviceError(f"unknown device {requested!r}; valid devices: auto, cpu, cuda, cuda:N, mps")


def compute_precision(device: torch.device, amp: bool) -> str:
    """The arithmetic a run on ``device`` trains in: ``bf16`` or ``fp16`` (autocast, when ``amp``
    is on and the device is a CUDA GPU; bf16 where the GPU supports it), else ``fp32``."""
    if device.type == "cuda" and amp:
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def describe_device(device: torch.device) -> str:
    """A human-readable device name, with the GPU's name when there is one."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    if device.type == "mps":
        return "Apple GPU (mps)"
    return f"CPU ({os.cpu_count()} cores)"


def auto_threads(device: torch.device) -> int:
    """Intra-op threads for training.

    The lab's models are small and its batches are 64 examples: on 2 cores, two
    intra-op threads were measured far slower than one (fork/join overhead per
    tiny op dominates; see benchmarks/bench_threads.py). One thread also leaves
    the other core to the app's server and the evaluation. On a GPU the CPU
    thread count barely matters; keep one.
    """
    return 1


# --------------------------------------------------------------------------- batch size that fits
@dataclass(frozen=True)
class BatchSizeFit:
    """The outcome of :func:`find_batch_size`: the size asked for, the size chosen, and every
    size tried with whether it fitted (in the order tried; empty when nothing was tried)."""

    requested: int
    chosen: int
    tried: tuple[tuple[int, bool], ...] = ()
    device: str = ""

    @property
    def reduced(self) -> bool:
        return self.chosen < self.requested

    def describe(self) -> str:
        """One sentence for the run record and the UI."""
        where = f" on {self.device}" if self.device else ""
        if not self.tried:
            return f"batch size {self.requested} (not checked against GPU memory{where})"
        tried = ", ".join(f"{size} {'fits' if ok else 'out of memory'}" for size, ok in self.tried)
        if self.reduced:
            return (f"batch size reduced from {self.requested} to {self.chosen} to fit GPU memory{where} "
                    f"(tried with real forward and backward passes: {tried})")
        return f"batch size {self.requested} fits GPU memory{where} (checked with a forward and backward pass)"

    def to_dict(self) -> dict:
        return {"requested": self.requested, "chosen": self.chosen,
                "tried": [[size, ok] for size, ok in self.tried], "device": self.device}


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device ran out of memory (``torch.OutOfMemoryError``, or the
    RuntimeError text that some CUDA libraries raise instead, e.g. cuBLAS ``ALLOC_FAILED``)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text.lower() or "ALLOC_FAILED" in text)


def find_batch_size(try_step: Callable[[int], None], requested: int, minimum: int = 2, multiple: int = 8,
                    after_oom: Callable[[], None] | None = None, device: str = "") -> BatchSizeFit:
    """The largest batch size ``<= requested`` for which ``try_step(size)`` runs without running out of memory.

    ``try_step`` runs one real step (forward and backward) at a batch size and
    raises ``torch.OutOfMemoryError`` when it does not fit; any other error
    propagates. The search tries ``requested`` first (one step when it fits),
    halves until a size fits, then bisects between the largest size that fitted
    and the smallest that did not, on multiples of ``multiple`` (tensor cores
    like multiples of 8) once sizes are that large: about ``2·log2(requested)``
    steps at worst. ``after_oom`` runs after each failure, outside the
    exception handler so that the failed step's tensors are already released
    (``torch.cuda.empty_cache`` on a GPU). Raises
    :class:`~tlcore.errors.DeviceError` when even ``minimum`` does not fit.
    """
    tried: list[tuple[int, bool]] = []

    def fits(size: int) -> bool:
        try:
            try_step(size)
            ok = True
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is caught; anything else re-raises
            if not is_out_of_memory(exc):
                raise
            ok = False
        if not ok and after_oom is not None:
            after_oom()
        tried.append((size, ok))
        return ok

    def result(chosen: int) -> BatchSizeFit:
        return BatchSizeFit(requested, chosen, tuple(tried), device)

    if fits(requested):
        return result(requested)
    failed, size = requested, requested // 2
    while True:
        if size < minimum:
            raise DeviceError(
                f"even a batch of {minimum} examples does not fit in the memory of {device or 'the GPU'} "
                f"(tried {', '.join(str(s) for s, _ in tried)}); use a smaller model, smaller images "
                "(a leading resize=PX in the dataset spec) or another device")
        if fits(size):
            break
        failed, size = size, size // 2
    fitted = size
    while True:
        middle = (fitted + failed) // 2
        if middle >= multiple:
            middle -= middle % multiple
        if middle <= fitted:
            return result(fitted)
        if fits(middle):
            fitted = middle
        else:
            failed = middle


def choose_batch_size(device: torch.device, try_step: Callable[[int], None], requested: int,
                      minimum: int = 2) -> BatchSizeFit:
    """On CUDA, :func:`find_batch_size` with the cache emptied after each failure; elsewhere
    ``requested`` unchanged and nothing tried (a CPU does not run out of memory this way)."""
    if device.type != "cuda":
        return BatchSizeFit(requested, requested, (), describe_device(device))
    return find_batch_size(try_step, requested, minimum=minimum, after_oom=torch.cuda.empty_cache,
                           device=describe_device(device))
