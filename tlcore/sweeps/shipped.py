"""The Negative-transfer page's default experiments, computed once and shipped with Transfer Lab.

Run live, each takes minutes on a laptop's CPU; a class should not wait for them. As with the
lessons (``tlcore/lesson_results``), their results ship as sweep files in
``tlcore/sweep_results/KIND.json`` and the page shows them at once, labelled as shipped, beside
"Run it live". A shipped file whose sweep differs from :data:`DEFAULT_SWEEPS` (the defaults
changed since it was made) is refused, never shown as if it matched.

Remake them (in a fresh temporary run store; the times each took are in the README)::

    python -m tlcore.sweeps.shipped            # all three
    python -m tlcore.sweeps.shipped budget     # one
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ..config import RunConfig
from ..errors import TransferLabError, UnknownNameError
from .io import export_sweep, load_sweep
from .results import SweepResult
from .specs import ALL_LABELS, BudgetSweep, ShiftSweep, SourceSweep, SweepSpec

#: The sweeps the Negative-transfer page sets up by default (its settings at seed 0; a test keeps
#: the page's defaults and these equal).
DEFAULT_SWEEPS: dict[str, SweepSpec] = {
    "budget": BudgetSweep(source="moons", target="moons:rotate=60", adaptation="dann",
                          budgets=(1, 2, 5, 10, 50, ALL_LABELS), seeds=(0, 1, 2), base=RunConfig(epochs=20)),
    "shift": ShiftSweep(source="moons", target="moons", shift="rotate", values=(), adaptation="dann",
                        target_labels=2, seeds=(0, 1, 2), base=RunConfig(epochs=20)),
    "source": SourceSweep(target="digits", sources=("digits:rotate=15", "digits:rotate=45", "digits:invert",
                                                    "digits:permute"),
                          strategy="finetune", target_labels=2, seeds=(0,), base=RunConfig(epochs=10)),
}

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "sweep_results"


def shipped_path(kind: str) -> Path:
    if kind not in DEFAULT_SWEEPS:
        raise UnknownNameError("experiment", kind, DEFAULT_SWEEPS)
    return SHIPPED_DIR / f"{kind}.json"


def load_shipped(kind: str) -> SweepResult | None:
    """The shipped result of the default ``kind`` sweep, or None when none ships."""
    path = shipped_path(kind)
    if not path.is_file():
        return None
    result = load_sweep(path)
    if result.spec.to_dict() != DEFAULT_SWEEPS[kind].to_dict():
        raise TransferLabError(f"the shipped result {path.name} was made for other default settings; remake it "
                               f"with: python -m tlcore.sweeps.shipped {kind}")
    return result


def shipped_spec(spec: SweepSpec) -> str | None:
    """The kind whose shipped result answers ``spec`` (the page's settings equal a default sweep), or None."""
    wanted = spec.to_dict()
    return next((kind for kind, default in DEFAULT_SWEEPS.items() if default.to_dict() == wanted), None)


def remake(kind: str, out_dir: Path = SHIPPED_DIR) -> Path:
    """Run the default ``kind`` sweep from scratch (a temporary run store) and write its file."""
    from ..runs import RunStore
    from .execute import run_sweep

    spec = DEFAULT_SWEEPS[kind]
    with tempfile.TemporaryDirectory(prefix="transfer-lab-shipped-") as home:
        # with its measurements: the shift sweep's input gaps, the source sweep's before-training scores
        result = run_sweep(spec, RunStore(Path(home) / "runs.sqlite"))
    return export_sweep(result, Path(out_dir) / f"{kind}.json")


def main(argv: list[str] | None = None) -> int:
    kinds = (argv if argv is not None else sys.argv[1:]) or list(DEFAULT_SWEEPS)
    for kind in kinds:
        shipped_path(kind)  # a clear error for an unknown name, before minutes of work
    for kind in kinds:
        t0 = time.perf_counter()
        path = remake(kind)
        sys.stderr.write(f"{kind}: wrote {path} in {time.perf_counter() - t0:.0f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
