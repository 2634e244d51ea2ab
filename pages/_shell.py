"""The app around every page: the navigation, the shared sidebar (seed, figure export,
device, UMAP status) and :func:`inside_app`, which each page calls first.

``app.py`` only calls :func:`main`. The navigation lists the pages in :data:`PAGES`.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from tlcore.errors import RunStoreError, StoreCorruptError
from tlcore.owners import is_teacher_token, new_owner_id, teacher_mode_available, valid_owner_id
from tlcore.runs import quarantine_store

from pages import _keys as K
from pages import _present, _runs, _state, _url
from pages._umap_worker import service as umap_service

# (file relative to app.py, title, icon, url path; None for the default page)
PAGES = (
    ("pages/lab.py", "Lab", ":material/science:", None),
    ("pages/data.py", "Data", ":material/dataset:", "data"),
    ("pages/train.py", "Train", ":material/model_training:", "train"),
    ("pages/inspect_run.py", "Inspect", ":material/insights:", "inspect"),
    ("pages/compare.py", "Compare", ":material/leaderboard:", "compare"),
    ("pages/negative.py", "Negative transfer", ":material/trending_down:", "negative"),
    ("pages/lessons.py", "Lessons", ":material/school:", "lessons"),
    ("pages/queue.py", "Queue", ":material/queue:", "queue"),
)

def page_links(*links: tuple[str, str]) -> None:
    """Links to other pages, side by side: each ``(title in PAGES, label)``. The text names a page
    ("on **Train**"); these make it one click away (``st.page_link`` keeps the session, unlike a
    plain markdown link, which reloads the app)."""
    by_title = {title: (path, icon) for path, title, icon, _ in PAGES}
    columns = st.columns(len(links))
    for column, (title, label) in zip(columns, links):
        path, icon = by_title[title]
        column.page_link(path, label=label, icon=icon)


_app_run = threading.local()


@contextmanager
def app_page_run():
    """Marks that :func:`main` is running a page through ``st.navigation`` (see :func:`inside_app`)."""
    _app_run.active = True
    try:
        yield
    finally:
        _app_run.active = False


def inside_app() -> None:
    """Every page calls this first.

    While no session has run app.py yet, Streamlit treats a folder called ``pages/`` next to
    the main script as its older, folder-based navigation: the first request after the
    server starts that names a page (a refresh of ``/train?run=…``) runs that file alone,
    without app.py's state, sidebar and navigation. Then run the app, which draws the same
    page through ``st.navigation`` (from then on the folder is ignored), and end the bare run.
    """
    if getattr(_app_run, "active", False):
        return
    main()
    st.stop()


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
    from tlcore.device import describe_device, select_device
    from tlcore.train import warm_up

    if os.environ.get("TRANSFER_LAB_WARMUP", "1") != "0":
        umap_service().warm_up()
        threading.Thread(target=_quiet, args=(warm_up,), name="torch-warmup", daemon=True).start()
    return {"interrupted": _runs.store().mark_interrupted(), "device": describe_device(select_device("auto"))}


def _store_problem(exc: RunStoreError) -> None:
    """In place of the page: what is wrong with the run store, where it is, and what to do."""
    st.error(f"**The run store cannot be used.** {exc}", icon=":material/database:")
    if not isinstance(exc, StoreCorruptError):
        return
    path = exc.path
    st.markdown(
        f"The file `{path}` is not a readable run database (a crash while it was written, a disk "
        "fault, or another file in its place). Nothing has been changed or deleted. Either:\n"
        f"- **start a fresh store** here: the damaged file is renamed to `{Path(path).name}.corrupt-<time>` "
        "in the same folder and kept, and a new, empty store starts in its place; or\n"
        f"- **repair it** in a terminal: `sqlite3 {path} .recover | sqlite3 recovered.sqlite` gets out what "
        "can be read; put the result in its place (with the app stopped). `tlcore runs --quarantine` "
        "moves the damaged file aside as the button does.")
    st.button("Move the damaged file aside and start a fresh store", key=K.STORE_QUARANTINE, type="primary",
              on_click=_quarantine, args=(str(path),), icon=":material/restart_alt:")


def _quarantine(path: str) -> None:
    """The button's callback: move the damaged store aside (see ``tlcore.runs.quarantine_store``)."""
    try:
        moved = quarantine_store(path)
    except RunStoreError as exc:
        _state.flash(str(exc), kind="error")
        return
    _runs.forget_store(path)
    _state.flash(f"The damaged run store was moved to {moved} (kept); a fresh, empty store has started.")


def ensure_owner() -> str:
    """This browser session's anonymous owner id: from ``?owner=`` when the URL has a valid one
    (a refresh keeps it), else a fresh one; written back to the URL on every run, since
    Streamlit clears the query parameters when the user changes page."""
    state = st.session_state
    url_owner = st.query_params.get("owner")
    if not state.get(K.OWNER):
        state[K.OWNER] = url_owner if valid_owner_id(url_owner) else new_owner_id()
    if url_owner != state[K.OWNER]:
        st.query_params["owner"] = state[K.OWNER]
    return state[K.OWNER]


def _check_teacher_token() -> None:
    """The token field's callback: switch teacher mode on for this session when the token is
    this server's (compared in constant time); the field is cleared either way."""
    state = st.session_state
    token = state.get(K.TEACHER_TOKEN) or ""
    state[K.TEACHER_TOKEN] = ""
    if is_teacher_token(token):
        state[K.TEACHER], state[K.TEACHER_ERROR] = True, None
    elif token:
        state[K.TEACHER_ERROR] = "That is not this server's teacher token."


def _teacher_sidebar() -> None:
    state = st.session_state
    if not teacher_mode_available():
        return
    if state.get(K.TEACHER):
        st.caption("**Teacher mode**: you may stop and delete every user's runs (Queue page).")
        return
    st.text_input("Teacher token", key=K.TEACHER_TOKEN, type="password", on_change=_check_teacher_token,
                  help="Set by whoever runs the server (TRANSFER_LAB_TEACHER_TOKEN). A teacher may stop and "
                       "delete every user's runs and sees every user's jobs on the Queue page.")
    if state.get(K.TEACHER_ERROR):
        st.caption(f":red[{state[K.TEACHER_ERROR]}]")


def _sidebar(startup: dict | None) -> None:
    st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=K.SEED,
                    help="Seeds the data shifts, sampling and initialisation: the same seed gives the same run.")
    st.radio("Figure export", K.FIGURE_FORMATS, key=K.FIGURE_FORMAT, horizontal=True,
             help="What the camera button of a chart's toolbar (top right of each chart) downloads: PNG "
                  "(for slides) or SVG (vector, for papers).")
    if startup is None:  # the run store cannot be used: the page says why
        return
    st.caption(f"**Device:** {startup['device']}")
    umap = umap_service().status()
    if umap["error"]:
        st.caption(f"**UMAP:** unavailable ({umap['error']}); PCA is shown instead")
    elif umap["ready"]:
        st.caption(f"**UMAP:** ready (warmed up in {umap['seconds']:.0f} s)")
    elif umap["started"]:
        st.caption(f"**UMAP:** warming up in the background ({umap['seconds']:.0f} s so far)…")
    if startup["interrupted"]:
        st.caption(f"{startup['interrupted']} run(s) left unfinished by an earlier session "
                   "were marked interrupted.")
    note = _runs.store().readonly_note
    if note:
        st.warning(note, icon=":material/lock:")
    _teacher_sidebar()


def main() -> None:
    """The whole app: page config, start-up, state, the navigation over :data:`PAGES`, the
    sidebar, then the chosen page."""
    st.set_page_config(page_title="Transfer Lab", page_icon="🧪", layout="wide")
    problem: RunStoreError | None = None
    try:
        startup = start_up(str(_runs.store().path))
    except RunStoreError as exc:  # corrupt, too new, locked: say so on every page instead
        problem, startup = exc, None
    _state.init_state()
    ensure_owner()

    page = st.navigation([
        st.Page(path, title=title, icon=icon, **({"default": True} if url_path is None else {"url_path": url_path}))
        for path, title, icon, url_path in PAGES])

    _url.apply_pending()  # a link's values for the sidebar's widgets (see pages/_url.py)
    _present.init()
    with st.sidebar:
        _present.toggle()
        _sidebar(startup)
    _present.apply()

    if problem is None:
        with app_page_run():
            try:
                page.run()
                return
            except RunStoreError as exc:  # e.g. the file was damaged while the app runs
                problem = exc
    _state.flash()
    _store_problem(problem)
