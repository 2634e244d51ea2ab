"""Presentation mode, for a projector: the sidebar's toggle or ``?present=1`` in any link.

It hides what a class need not see (Streamlit's Deploy button and toolbar, the header's
"Running… Stop" widget that flickers at every live refresh and stops no training, debugging
captions such as refresh timings) and enlarges type and chart markers. Pages ask :func:`on`;
:func:`enlarge` is applied to every chart by ``pages._export.show_figure``.
"""
from __future__ import annotations

import copy
from typing import Any

import streamlit as st

from pages import _keys as K

PARAM = "present"        # ?present=1 (pages/_url.py keeps it out of the pages' settings)
FONT_SCALE = 1.3         # chart type
MARKER_SCALE = 1.6       # chart markers and line widths

# Streamlit's own test ids (stable across releases, unlike its class names).
CSS = """
<style>
[data-testid="stToolbar"], [data-testid="stAppDeployButton"], [data-testid="stMainMenu"],
[data-testid="stStatusWidget"], [data-testid="stDecoration"] { display: none !important; }
[data-testid="stHeader"] { background: transparent; }
html, body, [data-testid="stAppViewContainer"] { font-size: 20px; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li,
[data-testid="stCaptionContainer"] { font-size: 1.15rem; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] * { font-size: 2.6rem !important; }
[data-testid="stMetricLabel"] p { font-size: 1.1rem; }
</style>
"""


def init() -> None:
    """Read ``?present=1`` the first time a session sees it (app.py, before the sidebar)."""
    state = st.session_state
    if K.PRESENT not in state:
        state[K.PRESENT] = st.query_params.get(PARAM) == "1"


def _follow_toggle() -> None:
    """The toggle's callback: put the mode in the URL, so that a refresh or a shared link keeps it."""
    if st.session_state.get(K.PRESENT):
        st.query_params[PARAM] = "1"
    elif PARAM in st.query_params:
        del st.query_params[PARAM]


def toggle() -> None:
    """The sidebar's switch."""
    st.toggle("Presentation mode", key=K.PRESENT, on_change=_follow_toggle,
              help="For a projector: larger type and markers, no toolbar, Deploy button, running indicator or "
                   "timing captions. A link with ?present=1 opens in it.")


def on() -> bool:
    return bool(st.session_state.get(K.PRESENT))


def apply() -> None:
    """Draw the mode's style sheet when it is on (every page, from app.py)."""
    if on():
        st.html(CSS)


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value * factor
    if isinstance(value, (list, tuple)):
        return [_scaled(v, factor) for v in value]
    return value


def enlarge(fig: Any) -> Any:
    """A copy of ``fig`` (a plotly figure or figure dict) with larger type, markers and lines;
    ``fig`` itself is left as it is (live figures are kept and drawn again)."""
    as_dict = fig if isinstance(fig, dict) else fig.to_plotly_json()
    out = copy.deepcopy(as_dict)
    layout = out.setdefault("layout", {})
    font = layout.setdefault("font", {})
    font["size"] = _scaled(font.get("size", 12), FONT_SCALE)
    for name, value in list(layout.items()):
        if isinstance(value, dict) and isinstance(value.get("font"), dict) and "size" in value["font"]:
            value["font"]["size"] = _scaled(value["font"]["size"], FONT_SCALE)
    for note in layout.get("annotations") or []:
        if isinstance(note.get("font"), dict) and "size" in note["font"]:
            note["font"]["size"] = _scaled(note["font"]["size"], FONT_SCALE)
    if isinstance(layout.get("height"), (int, float)):
        layout["height"] = layout["height"] * 1.15
    for trace in out.get("data") or []:
        if trace.get("type", "scatter") in ("scatter", "scattergl"):  # other traces have no marker size
            marker = trace.setdefault("marker", {})
            marker["size"] = _scaled(marker.get("size", 6), MARKER_SCALE)
        line = trace.get("line")
        if isinstance(line, dict) and "width" in line:
            line["width"] = _scaled(line["width"], MARKER_SCALE)
        for key in ("textfont", "insidetextfont", "outsidetextfont"):
            if isinstance(trace.get(key), dict) and "size" in trace[key]:
                trace[key]["size"] = _scaled(trace[key]["size"], FONT_SCALE)
    return out
