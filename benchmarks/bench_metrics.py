"""Speed and memory of the domain-gap metrics, as ratios measured in one run on one device.

    python benchmarks/bench_metrics.py [--n 10000 --d 256 --threads 2 --device cpu]

Times (best of ``--repeats`` interleaved rounds after one warm-up each):
  * one n×n×d matmul ``X @ Y.T`` into a preallocated output (pure compute; the
    yardstick for the pairwise work MMD must do),
  * ``tlcore.metrics.mmd2`` on n vs n d-dimensional features,
  * ``tlcore.metrics.proxy_a_distance`` on the same features,
and prints mmd/matmul (target ≤ 6× on CPU) and pad/mmd (target ≤ 0.25×), plus the
peak memory increase of each stage: measured (peak RSS on CPU, the CUDA
allocator's peak on GPU) and the analytic bound of the blocked MMD.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tlcore import metrics  # noqa: E402

MIB = 2 ** 20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="points per side")
    parser.add_argument("--d", type=int, default=256, help="feature dimension")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats after a warm-up; the best counts")
    parser.add_argument("--block-size", type=int, default=2048, help="MMD block size")
    parser.add_argument("--shift", type=float, default=0.05, help="mean shift of the second sample")
    return parser.parse_args()


class PeakMemory:
    """Peak memory increase over a stage.

    CUDA: the allocator's peak above what was allocated at the start. CPU on
    Linux: the kernel's peak RSS (VmHWM, reset at the start through
    /proc/self/clear_refs) above the RSS at the start. Elsewhere: the rise of
    ``ru_maxrss``, a lifetime high-water mark that can only under-report.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.how = "CUDA allocator peak" if device.type == "cuda" else "peak RSS"

    @staticmethod
    def _proc_status() -> dict[str, int] | None:
        try:
            with open("/proc/self/status") as status:
                return {k: int(v) * 1024 for k, v in re.findall(r"(VmHWM|VmRSS):\s+(\d+) kB", status.read())}
        except OSError:
            return None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")  # resets VmHWM to the current RSS
            self.start = self._proc_status()["VmRSS"]
            self.source = "proc"
        except (OSError, KeyError, TypeError):
            self.how = "ru_maxrss rise (lower bound)"
            self.source = "rusage"
            self.start = self._max_rss()
        return self

    @staticmethod
    def _max_rss() -> int:
        factor = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * factor

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.source == "proc":
            peak = self._proc_status()["VmHWM"]
        else:
            peak = self._max_rss()
        self.increase = max(0, peak - self.start)


def interleaved_best_times(stages: dict, device: torch.device, repeats: int) -> tuple[dict, dict, dict]:
    """Warm up each stage once (measuring its peak memory), then time the stages in
    turn, ``repeats`` rounds, keeping each one's best: load from other processes
    then hits all stages alike, which keeps the ratios fair."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    results, memory = {}, {}
    for name, fn in stages.items():
        with PeakMemory(device) as peak:
            results[name] = fn()
        memory[name] = peak
    best = {name: float("inf") for name in stages}
    for _ in range(repeats):
        for name, fn in stages.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results, memory


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def mmd_memory_bound(n: int, d: int, block_size: int, element_size: int, median_points: int = 1024) -> int:
    """Analytic peak of metrics.mmd2 on n vs n points: one reused block buffer; the
    centred samples (2·n·d), their augmented rows (4·n·(d+2)) and one transient
    n·d product while those are built; the median heuristic's distance matrix,
    triangle indices (int64) and selected pairs. Nothing grows with n²."""
    block = min(block_size, n) ** 2 * element_size
    samples = (2 * n * d + 4 * n * (d + 2) + n * d) * element_size
    median = median_points ** 2 * (element_size + 8 + element_size // 2)
    return block + samples + median


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda requested but CUDA is not available")

    load_before = load_average()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, args.d, generator=generator).to(device)
    y = (torch.randn(args.n, args.d, generator=generator) + args.shift).to(device)
    element_size = x.element_size()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"n = {args.n} per side, d = {args.d}, block {args.block_size}, "
          f"best of {args.repeats} interleaved rounds after a warm-up")

    product = torch.empty(args.n, args.n, device=device)
    stages = {
        "matmul": lambda: torch.matmul(x, y.T, out=product),
        "mmd": lambda: metrics.mmd2(x, y, block_size=args.block_size),
        "pad": lambda: metrics.proxy_a_distance(x, y),
    }
    times, results, memory = interleaved_best_times(stages, device, args.repeats)
    matmul_time, mmd_time, pad_time = times["matmul"], times["mmd"], times["pad"]
    mmd, pad = results["mmd"], results["pad"]
    mmd_memory, pad_memory, matmul_memory = memory["mmd"], memory["pad"], memory["matmul"]

    bound = mmd_memory_bound(args.n, args.d, args.block_size, element_size)
    full_matrix = args.n * args.n * element_size
    print(f"matmul X @ Y.T ({args.n}x{args.n}x{args.d})   {matmul_time:8.3f} s")
    print(f"metrics.mmd2 (5 kernels)          {mmd_time:8.3f} s   MMD² = {mmd:.6f}")
    print(f"metrics.proxy_a_distance          {pad_time:8.3f} s   PAD = {pad.pad:.4f} "
          f"(domain accuracy {pad.domain_accuracy:.4f})")
    print(f"ratio mmd/matmul  {mmd_time / matmul_time:6.2f}x   (target <= 6x on CPU)")
    print(f"ratio pad/mmd     {pad_time / mmd_time:6.3f}x   (target <= 0.25x)")
    print(f"load average (1, 5, 15 min) before: {load_before}; after: {load_average()}  "
          "(other processes on these cores slow every stage)")
    block = min(args.block_size, args.n) ** 2 * element_size
    print(f"peak memory increase ({mmd_memory.how}):")
    print(f"  mmd2    {mmd_memory.increase / MIB:7.1f} MiB   analytic bound {bound / MIB:.1f} MiB "
          f"(one block {block / MIB:.1f} MiB; an n×n matrix would be {full_matrix / MIB:.1f} MiB); "
          "measured includes one-time thread-pool and BLAS buffers")
    print(f"  pad     {pad_memory.increase / MIB:7.1f} MiB")
    print(f"  matmul  {matmul_memory.increase / MIB:7.1f} MiB   (writes its n×n output)")

if __name__ == "__main__":
    main()
