"""Export: every chart through :func:`show_figure` (its camera button saves PNG or SVG, as the
sidebar says), and tables as CSV downloads.
"""
from __future__ import annotations

import re
from typing import Sequence

import pandas as pd
import streamlit as st

from tlcore.inspection import RunInspection

from pages import _keys as K
from pages import _present


def figure_config(name: str) -> dict:
    """Plotly config of a chart: the toolbar shown, and its camera button downloading
    ``transfer-lab-<name>.png`` or ``.svg`` (the sidebar's "Figure export" setting), at twice the
    on-screen resolution for PNG."""
    fmt = str(st.session_state.get(K.FIGURE_FORMAT) or K.FIGURE_FORMATS[0]).lower()
    for prefix in ("chart.", "btn."):
        name = name[len(prefix):] if name.startswith(prefix) else name
    stem = re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-") or "figure"
    return {"displayModeBar": True, "displaylogo": False,
            "toImageButtonOptions": {"format": fmt, "filename": f"transfer-lab-{stem}", "scale": 2}}


def show_figure(fig, key: str, **kwargs):
    """``st.plotly_chart(fig, key=key, config=figure_config(key), **kwargs)``: every chart of the app
    goes through here, so that each exports as the sidebar says. Returns what ``st.plotly_chart``
    returns (the selection state with ``on_select="rerun"``); a ``config`` in ``kwargs`` is merged in."""
    config = {**figure_config(key), **(kwargs.pop("config", None) or {})}
    if _present.on():
        fig = _present.enlarge(fig)
    return st.plotly_chart(fig, key=key, config=config, **kwargs)


def csv_download(frame: pd.DataFrame, label: str, file_name: str, key: str) -> None:
    """A button that downloads ``frame`` as a UTF-8 CSV file."""
    st.download_button(label, frame.to_csv(index=False).encode("utf-8"), file_name=file_name, mime="text/csv",
                       key=key, icon=":material/download:")


def curves_frame(events: Sequence[dict]) -> pd.DataFrame:
    """A run's curves as a table, one row per logged step or evaluation: ``kind`` ("step" or
    "eval"), ``step``, ``phase``, each loss term (steps), the accuracies and extras (evaluations)."""
    rows = []
    for e in events:
        if e["kind"] == "step":
            rows.append({"kind": "step", "step": e["step"], "phase": e.get("phase"),
                         **{f"loss {k}": v for k, v in e["losses"].items()}})
        elif e["kind"] == "eval":
            rows.append({"kind": "eval", "step": e["step"], "source_accuracy": e["source_accuracy"],
                         "target_accuracy": e["target_accuracy"], **e.get("extras", {})})
    return pd.DataFrame(rows)


def per_class_frame(models: Sequence[tuple[str, str, RunInspection]], class_names: Sequence[str]) -> pd.DataFrame:
    """Per-class target test accuracy of each ``(strategy, run id, inspection)``: one row per class
    and model."""
    return pd.DataFrame([{"strategy": name, "run": run_id, "class": str(c), "accuracy": float(acc)}
                         for name, run_id, ins in models for c, acc in zip(class_names, ins.per_class_accuracy)],
                        columns=["strategy", "run", "class", "accuracy"])


def confusion_frame(models: Sequence[tuple[str, str, RunInspection]], class_names: Sequence[str]) -> pd.DataFrame:
    """The target test confusion matrix of each ``(strategy, run id, inspection)`` in long form:
    one row per model, true class and predicted class, with the count."""
    names = [str(c) for c in class_names]
    return pd.DataFrame([{"strategy": name, "run": run_id, "true": names[t], "predicted": names[p],
                          "count": int(ins.confusion[t][p])}
                         for name, run_id, ins in models for t in range(len(names)) for p in range(len(names))],
                        columns=["strategy", "run", "true", "predicted", "count"])
