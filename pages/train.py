"""Train: pick a strategy and its hyperparameters, start a run in the background and watch it live."""
import time

import streamlit as st

from pages import _keys as K
from pages import _export, _live, _ntg_view, _policy, _present, _runs, _shell, _state
from pages import _url
from tlcore.config import RunConfig, form_fields
from tlcore.errors import RunNotFoundError
from tlcore.runs import ACTIVE_STATUSES
from tlcore.seeds import ntg_over_seeds
from tlcore.strategies import STRATEGIES

_shell.inside_app()
# The whole setup (seed, data, strategy and its hyperparameters, schedule) lives in the URL, beside the
# run shown (?run=, handled below).
_url.sync(_url.train_fields(), own=("run",))

st.title("Train")
state = st.session_state
run_store = _runs.store()

# Reattach to the run named in the URL (a refresh, a shared link), or put ours there.
url_run = st.query_params.get("run")
if url_run and url_run != state.get(K.RUN_ID):
    try:
        run_store.get_run(url_run)
        _runs.attach(url_run)
    except RunNotFoundError:
        st.warning(f"No run with id {url_run!r} in the run store; it may have been deleted.")
        del st.query_params["run"]
elif state.get(K.RUN_ID) and not url_run:
    st.query_params["run"] = state[K.RUN_ID]

run_id = state.get(K.RUN_ID)
try:
    record = run_store.get_run(run_id) if run_id else None
except RunNotFoundError:  # deleted meanwhile (e.g. from the Compare page in another tab)
    st.warning(f"Run {run_id} is no longer in the run store.")
    _runs.attach(None)
    run_id, record = None, None
active = record is not None and record.status in ACTIVE_STATUSES

# --- settings -----------------------------------------------------------------------------------
source, target = _state.spec_from_state("source"), _state.spec_from_state("target")
st.markdown(f"**Data:** `{source}` → `{target}` · seed {_state.seed()} (sidebar)")
st.page_link("pages/data.py", label="Change the pair on the Data page", icon=":material/dataset:")

with st.expander("Strategy, hyperparameters and schedule", expanded=not active):
    left, right = st.columns([1, 2], gap="large")
    with left:
        st.selectbox("Strategy", list(STRATEGIES), key=K.STRATEGY)
        strategy = state[K.STRATEGY]
        st.caption(STRATEGIES[strategy].summary)
        run_fields = {f.name: f for f in form_fields(RunConfig)}
        a, b = st.columns(2)
        with a:
            _state.field_widget(run_fields["epochs"], K.EPOCHS, "Epochs")
            _state.field_widget(run_fields["lr"], K.LR, "Learning rate")
        with b:
            _state.field_widget(run_fields["batch_size"], K.BATCH_SIZE, "Batch size", step=8)
            st.number_input("Target labels per class", min_value=0, max_value=100, step=1, key=K.BUDGET,
                            help=run_fields["target_labels"].help)
        c, d, e = st.columns(3)
        with c:
            _state.field_widget(run_fields["optimizer"], K.OPTIMIZER, "Optimiser")
        with d:
            _state.field_widget(run_fields["lr_schedule"], K.LR_SCHEDULE, "LR schedule")
        with e:
            _state.field_widget(run_fields["momentum"], K.MOMENTUM, "Momentum (sgd)")
        kind = _state.dataset_info(state[K.dataset("source")]).kind
        models = _runs.model_choices(kind)
        if state.get(K.MODEL) not in models:  # e.g. resnet18 kept from image data, now on moons
            state[K.MODEL] = "auto"
        st.selectbox("Model", models, key=K.MODEL,
                     help="The network: auto (an MLP for 2-D points, a LeNet-style CNN for images) or, for images, "
                          "a torchvision backbone with ImageNet weights. finetune with freeze_depth = -1 on a "
                          "backbone is a linear probe on ImageNet features.")
        st.caption(_runs.model_note(state[K.MODEL], kind))
    with right:
        fields = form_fields(STRATEGIES[strategy].Config)
        if fields:
            st.markdown(f"**{strategy} hyperparameters**")
            columns = st.columns(min(3, len(fields)))
            for i, f in enumerate(fields):
                with columns[i % len(columns)]:
                    _state.field_widget(f, K.param(strategy, f.name))
        else:
            st.markdown(f"**{strategy}** has no hyperparameters.")
        labels_needed = _runs.labels_needed(strategy, state[K.BUDGET])
        if labels_needed:
            st.warning(labels_needed)
        elif state[K.BUDGET] > 0 and STRATEGIES[strategy].role != "reference":
            st.caption("With labelled target examples, the run is paired with a target_only run on the same "
                       "labels to measure the negative-transfer gap (NTG).")

go_col, stop_col, summary_col = st.columns([1, 1, 4], vertical_alignment="center")
go_col.button("Start", key=K.START, type="primary", icon=":material/play_arrow:", disabled=active or bool(labels_needed),
              on_click=_runs.start_from_state, help=labels_needed, width="stretch")
stop_col.button("Stop", key=K.STOP, icon=":material/stop:", disabled=not active, on_click=_runs.stop_attached,
                width="stretch")
summary_col.caption(f"{strategy} · {state[K.MODEL]} · {state[K.EPOCHS]} epochs · batch {state[K.BATCH_SIZE]} · lr {state[K.LR]:g} "
                    f"({state[K.OPTIMIZER]}, {state[K.LR_SCHEDULE]}) · "
                    f"{state[K.BUDGET]} target labels/class")
if state.get(K.TRAIN_ERROR):
    st.error(state[K.TRAIN_ERROR])
st.caption(_policy.limits_caption())

st.divider()


# --- the run --------------------------------------------------------------------------------------
def render_run(run_id: str, record=None) -> str:
    """Pull the run's new events and draw its progress and charts; return its status.

    ``record`` is the run as last read from the store; it is read again only when the
    events cannot tell what happened (each store query costs a live refresh time).
    """
    events, new = _runs.pull_events(run_id)
    started = state.get(K.STARTED_AT)
    if started is not None:  # just started: wait a moment for the first point rather than a refresh
        while not any(e["kind"] == "step" for e in events) and time.perf_counter() - started < _live.FIRST_POINT_WAIT_S:
            time.sleep(0.02)
            events, new = _runs.pull_events(run_id)
    ended = any(e["kind"] == "result" for e in events)
    rec = record if record is not None and not ended and new else run_store.get_run(run_id)
    if started is not None and any(e["kind"] == "step" for e in events):
        state[K.FIRST_POINT_S] = time.perf_counter() - started
        state[K.STARTED_AT] = None
    # The record may have been read while the run was still queued (the live view keeps it while
    # events arrive): the header follows the events, as the progress bar does.
    status = _live.shown_status(events, rec.status)
    st.markdown(f"**Run `{rec.id}`** · {rec.strategy} · `{rec.source}` → `{rec.target}` · "
                f"{rec.target_labels} labels/class · seed {rec.seed} · **{status}**")
    if status == "queued":  # waiting for a free slot: the live view switches to the curves when it starts
        st.info(_runs.queue_note(run_id) or "queued", icon=":material/hourglass_top:")
    fraction, text = _live.progress(events, status)
    st.progress(fraction, text=text)
    if status in ACTIVE_STATUSES and ended:
        st.info("Training the matched target_only run (same target labels and seed) for the negative-transfer gap…")
    memo = state.setdefault(K.LIVE_FIGURES, _live.FigureMemo())
    for i, (name, fig) in enumerate(memo.figures(run_id, events)):
        if i % 2 == 0:
            columns = st.columns(2)
        with columns[i % 2]:
            st.markdown(_live.chart_head(name))
            _export.show_figure(fig, K.chart("train", name))
    return rec.status


def live_view(run_id: str, record) -> None:
    """Redraws only this part of the page while the run trains (the rest of the page stays put),
    every ``state[K.LIVE_INTERVAL]`` seconds: as often as the run logs a point, no more."""
    t0 = time.perf_counter()
    status = render_run(run_id, record)
    ms = (time.perf_counter() - t0) * 1000
    timings = (state.get(K.POLL_MS) or [])[-49:] + [ms]
    state[K.POLL_MS] = timings
    first = state.get(K.FIRST_POINT_S)
    interval = state.get(K.LIVE_INTERVAL) or _live.LIVE_INTERVAL_S
    if not _present.on():  # a debugging figure, not for a projector
        st.caption(f"Live view: refreshed every {interval:g} s (as often as the run logs); this refresh took "
                   f"{ms:.0f} ms (median {_live.median_ms(timings):.0f} ms)"
                   + (f" · first live point {first:.2f} s after Start" if first is not None else ""))
    if status not in ACTIVE_STATUSES:
        st.rerun()  # the run has ended: redraw the whole page once, without the live refresh
    wanted = _live.refresh_interval(state.get(K.EVENTS) or [], interval)
    if wanted != interval:  # the run's pace changed: register the fragment again with the new interval
        state[K.LIVE_INTERVAL] = wanted
        st.rerun()


@st.fragment
def empty_view() -> None:
    """What the live view will show, drawn before any run: the charts then only update in place
    when the first points arrive, which the browser does much faster than drawing new charts."""
    st.markdown("**No run yet**: press **Start**, or run a preset from the **Lab** page.")
    _shell.page_links(("Lab", "Lab: one-click presets"))
    st.progress(0.0, text="not started")
    for i, (name, fig) in enumerate(_live.live_figures([])):
        if i % 2 == 0:
            columns = st.columns(2)
        with columns[i % 2]:
            st.markdown(_live.chart_head(name))
            _export.show_figure(fig, K.chart("train", name))


if run_id is None:
    empty_view()
elif active:
    st.fragment(live_view, run_every=state.get(K.LIVE_INTERVAL) or _live.LIVE_INTERVAL_S)(run_id, record)
else:
    st.fragment(render_run)(run_id)  # a fragment like the live view, so the charts update in place
    rec = run_store.get_run(run_id)
    if rec.status == "done" or rec.status == "stopped":
        a, b, c = st.columns(3)
        a.metric("Target accuracy", f"{rec.metrics.get('target_accuracy', float('nan')):.3f}")
        b.metric("Source accuracy", f"{rec.metrics.get('source_accuracy', float('nan')):.3f}")
        if "domain_accuracy" in rec.metrics:
            c.metric("Domain-discriminator accuracy", f"{rec.metrics['domain_accuracy']:.3f}")
        _ntg_view.ntg_badge(rec.metrics, ntg_over_seeds(rec, run_store))
        st.caption(_runs.data_path_note(rec.metrics))
        for warning in rec.metrics.get("data_warnings") or []:
            st.warning(f"Data: {warning}", icon=":material/warning:")
        if rec.metrics.get("preprocessing"):
            with st.expander("Recipe and preprocessing (as recorded with the run)"):
                st.markdown("\n".join(f"- {line}" for line in rec.metrics["preprocessing"]))
        _export.csv_download(_export.curves_frame(_runs.pull_events(rec.id)[0]), "Download the curves as CSV",
                             f"transfer-lab-run-{rec.id}-curves.csv", K.download("train", "curves"))
        st.page_link("pages/inspect_run.py", label="Inspect this run (embeddings, boundaries, confusion)",
                     icon=":material/insights:")
        state[K.INSPECT_RUN] = rec.id  # the Inspect page opens on this run
    elif rec.error:
        st.error(f"The run ended as **{rec.status}**: {rec.error}")
    timings = state.get(K.POLL_MS) or []
    first = state.get(K.FIRST_POINT_S)
    if timings and not _present.on():
        st.caption(f"Live view refreshes took a median {_live.median_ms(timings):.0f} ms every "
                   f"{state.get(K.LIVE_INTERVAL) or _live.LIVE_INTERVAL_S:g} s"
                   + (f"; first live point {first:.2f} s after Start" if first else ""))
