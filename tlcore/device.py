"""Device choice and CPU thread policy."""
from __future__ import annotations

import os

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
