"""A sweep result as a self-contained, versioned JSON document (configs and results).

:func:`sweep_to_dict` / :func:`sweep_from_dict` convert in memory (the app's downloads and
uploads, ``tlcore sweep --json``); :func:`export_sweep` / :func:`load_sweep` write and read
a file. A loaded result is rebuilt from its rows by its spec, so the summary is recomputed,
never trusted from the file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..config import RunConfig
from ..errors import TransferLabError
from .plan import PlannedRun
from .results import FailedRun, GapRow, RunRow, SourceScore, SweepResult
from .specs import spec_from_dict

SWEEP_FORMAT = "transfer-lab-sweep"
SWEEP_FORMAT_VERSION = 1


def sweep_to_dict(result: SweepResult) -> dict:
    """Everything :func:`export_sweep` writes, as a JSON-ready dict (also ``tlcore sweep --json``):
    format and version, spec, plan (every run's config), rows, measurements, the per-point
    ``summary`` and the flat ``table`` of ``result.to_rows()``. :func:`sweep_from_dict` reads it back."""
    doc = {"format": SWEEP_FORMAT, "version": SWEEP_FORMAT_VERSION, "kind": result.spec.kind,
           "spec": result.spec.to_dict(), "complete": result.complete,
           "plan": [p.to_dict() for p in result.plan], "rows": [r.to_dict() for r in result.rows],
           "failed": [f.to_dict() for f in result.failed]}
    doc.update(result.measurements_dict())
    doc["summary"] = [p.to_dict() for p in result.points]
    doc["table"] = result.to_rows()
    return doc


def sweep_from_dict(doc: Mapping[str, Any], source: str = "the sweep document") -> SweepResult:
    """The result :func:`sweep_to_dict` gave ``doc`` for. ``source`` names where ``doc`` came from
    in error messages. Raises TransferLabError for a document of another format, a newer format
    version, or a malformed one."""
    if not isinstance(doc, Mapping) or doc.get("format") != SWEEP_FORMAT:
        raise TransferLabError(f"{source} is not a Transfer Lab sweep file (no format {SWEEP_FORMAT!r})")
    version = doc.get("version")
    if not isinstance(version, int) or version > SWEEP_FORMAT_VERSION:
        raise TransferLabError(f"{source} has sweep format version {version!r}; this Transfer Lab reads up to "
                               f"{SWEEP_FORMAT_VERSION}: update Transfer Lab")
    try:
        spec = spec_from_dict(doc["spec"])
        plan = tuple(PlannedRun(p["arm"], p["x"], p["seed"], RunConfig.from_dict(p["config"])) for p in doc["plan"])
        rows = tuple(RunRow(**r) for r in doc["rows"])
        failed = tuple(FailedRun(**f) for f in doc.get("failed", []))
        gaps = tuple(GapRow(**g) for g in doc.get("gaps", []))
        scores = tuple(SourceScore(**s) for s in doc.get("scores", []))
        budgets = tuple(doc["budgets"]) if "budgets" in doc else None
    except (KeyError, TypeError) as exc:
        raise TransferLabError(f"{source}: malformed sweep file ({type(exc).__name__}: {exc})") from exc
    return spec.build_result(plan, rows, failed, gaps=gaps, scores=scores, budgets=budgets,
                             complete=bool(doc.get("complete", True)))


def sweep_from_json(data: str | bytes, source: str = "the sweep document") -> SweepResult:
    """A result from the JSON text of a sweep file (an upload, say); errors as :func:`load_sweep`."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TransferLabError(f"cannot read sweep file {source}: {exc}") from exc
    return sweep_from_dict(doc, source)


def export_sweep(result: SweepResult, path: str | os.PathLike) -> Path:
    """Write ``result`` as a self-contained JSON file: format name and version, the spec, every
    planned run's config (to re-run any point), the run rows and measurements, and the summary
    (informative; :func:`load_sweep` recomputes it from the rows)."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(sweep_to_dict(result), indent=1, allow_nan=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def load_sweep(path: str | os.PathLike) -> SweepResult:
    """Read a file written by :func:`export_sweep` back into the same result."""
    source = Path(path).expanduser()
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TransferLabError(f"cannot read sweep file {source}: {exc}") from exc
    return sweep_from_json(text, str(source))
