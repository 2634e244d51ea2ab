"""Transfer Lab in the browser: ``streamlit run app.py``.

This file only sets the page, the shared sidebar (seed, device) and the
navigation over the pages in ``pages/``; each page reads its state, calls the
engine (``tlcore``) and renders.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `pages` and `tlcore` import from a plain checkout
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

# The app's own modules are imported inside the functions below: the UMAP helper process
# (pages/_umap_worker.py) imports this file again under the name __mp_main__, and needs none of them.


def _quiet(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - a warm-up that fails only costs time later
        pass


@st.cache_resource(show_spinner=False)
def start_up(store_path: str) -> dict:
    """Once per process and run store: start the warm-ups in the background (UMAP's numba
    compilation, in the helper process that computes every UMAP (see pages/_umap_worker.py);
    torch's first optimiser step, in a thread) and mark runs whose process died as interrupted.
    ``TRANSFER_LAB_WARMUP=0`` skips the warm-ups (the page tests)."""
    from pages import _ui as ui
    from tlcore.device import describe_device, select_device
    from tlcore.train import warm_up

    if os.environ.get("TRANSFER_LAB_WARMUP", "1") != "0":
        ui.umap_service().warm_up()
        threading.Thread(target=_quiet, args=(warm_up,), name="torch-warmup", daemon=True).start()
    return {"interrupted": ui.store().mark_interrupted(), "device": describe_device(select_device("auto"))}


def main() -> None:
    from pages import _keys as K
    from pages import _ui as ui
    from pages import _url

    st.set_page_config(page_title="Transfer Lab", page_icon="🧪", layout="wide")
    startup = start_up(str(ui.store().path))
    ui.init_state()

    page = st.navigation([
        st.Page("pages/lab.py", title="Lab", icon=":material/science:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/dataset:", url_path="data"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
        st.Page("pages/inspect_run.py", title="Inspect", icon=":material/insights:", url_path="inspect"),
        st.Page("pages/compare.py", title="Compare", icon=":material/leaderboard:", url_path="compare"),
        st.Page("pages/negative.py", title="Negative transfer", icon=":material/trending_down:",
                url_path="negative"),
        st.Page("pages/lessons.py", title="Lessons", icon=":material/school:", url_path="lessons"),
    ])

    _url.apply_pending()  # a link's values for the sidebar's widgets (see pages/_url.py)
    with st.sidebar:
        st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=K.SEED,
                        help="Seeds the data shifts, sampling and initialisation: the same seed gives the same run.")
        st.radio("Figure export", K.FIGURE_FORMATS, key=K.FIGURE_FORMAT, horizontal=True,
                 help="What the camera button of a chart's toolbar (top right of each chart) downloads: PNG "
                      "(for slides) or SVG (vector, for papers).")
        st.caption(f"**Device:** {startup['device']}")
        umap = ui.umap_service().status()
        if umap["error"]:
            st.caption(f"**UMAP:** unavailable ({umap['error']}); PCA is shown instead")
        elif umap["ready"]:
            st.caption(f"**UMAP:** ready (warmed up in {umap['seconds']:.0f} s)")
        elif umap["started"]:
            st.caption(f"**UMAP:** warming up in the background ({umap['seconds']:.0f} s so far)…")
        if startup["interrupted"]:
            st.caption(f"{startup['interrupted']} run(s) left unfinished by an earlier session "
                       "were marked interrupted.")

    with ui.app_page_run():
        page.run()


# Guarded: the UMAP helper process (pages/_umap_worker.py) is spawned while Streamlit has made this
# script the __main__ module, and it imports it again under the name __mp_main__.
if __name__ == "__main__":
    main()
