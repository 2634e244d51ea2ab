"""Compare: every stored run in a table; target accuracy and the negative-transfer gap by strategy."""
import io

import streamlit as st

from pages import _keys as K
from pages import _export, _figures, _ntg_view, _runs, _shell, _state
from pages import _url
from tlcore.errors import TransferLabError
from tlcore.owners import delete_run
from tlcore.runs import ACTIVE_STATUSES, LISTED_STATUSES, UNREADABLE
from tlcore.seeds import ntg_by_configuration
from tlcore.strategies import STRATEGIES
from tlcore.summary import summarise_by_strategy

_shell.inside_app()

st.title("Compare")
_state.flash()
state = st.session_state
run_store = _runs.store()
records = run_store.list_runs()
if not records:
    st.info("No runs stored yet: train one on the **Train** page or run a preset on **Lab**.")
    _shell.page_links(("Train", "Train"), ("Lab", "Lab: presets"))
    st.stop()


def pair_of(r) -> str:
    return f"{r.source} → {r.target} · {r.target_labels or 0} labels/class"


pairs = list(dict.fromkeys(pair_of(r) for r in records))  # newest first
if state.get(K.PAIR_FILTER) not in [K.ALL_PAIRS] + pairs:
    state[K.PAIR_FILTER] = K.ALL_PAIRS
strategies_present = [s for s in STRATEGIES if any(r.strategy == s for r in records)]
if K.STRATEGY_FILTER not in state or not set(state[K.STRATEGY_FILTER]) <= set(strategies_present):
    # strategies no stored run uses any more leave the filter (all present ones, if none is left)
    kept = [s for s in state.get(K.STRATEGY_FILTER) or [] if s in strategies_present]
    state[K.STRATEGY_FILTER] = kept or strategies_present
# The filters live in the URL (a shareable link); strategies default to all those present.
_url.sync([K.STATUS_FILTER,
           _url.Field(K.STRATEGY_FILTER, codec=_url.LIST, default=lambda: strategies_present,
                      check=lambda names: next((f"no stored run uses {n!r}" for n in names
                                                if n not in strategies_present), None)),
           _url.Field(K.PAIR_FILTER, check=lambda p: None if p in [K.ALL_PAIRS] + pairs
                      else "no stored run has this pair"),
           _url.Field(K.WITH_STOPPED, name="with_stopped")])

a, b, c = st.columns([2, 3, 3])
a.multiselect("Status", list(LISTED_STATUSES), key=K.STATUS_FILTER)
b.multiselect("Strategies", strategies_present, key=K.STRATEGY_FILTER)
c.selectbox("Pair (source → target · target labels)", [K.ALL_PAIRS] + pairs, key=K.PAIR_FILTER)
chosen = [r for r in records
          if r.status in state[K.STATUS_FILTER] and r.strategy in state[K.STRATEGY_FILTER]
          and state[K.PAIR_FILTER] in (K.ALL_PAIRS, pair_of(r))]

st.dataframe(_runs.runs_frame(chosen), hide_index=True, column_config=_runs.RUN_COLUMNS, key=K.COMPARE_TABLE)
st.caption(f"{len(chosen)} of {len(records)} stored runs. NTG = target error with the source − target error of "
           "target_only on the same labelled target examples; positive (red) means negative transfer.")
hidden = {s: n for s in ("interrupted", UNREADABLE) if s not in state[K.STATUS_FILTER]
          and (n := sum(r.status == s for r in records))}
if hidden:
    st.caption(" and ".join(f"{n} {s}" for s, n in hidden.items()) + " run(s) are not shown: pick their status in "
               "the Status filter to see them or delete them below.")
for r in [r for r in chosen if r.status == UNREADABLE][:5]:
    st.warning(f"Run {r.id} cannot be read: {r.error}", icon=":material/report:")

# --- by strategy, one chart per pair --------------------------------------------------------------
# A stopped run did not train to the end: it would pull its strategy's mean towards an unfinished
# model, so it counts only when asked.
st.toggle("Count stopped runs in the means", key=K.WITH_STOPPED,
          help="Off: the charts and the NTG table use runs that trained to the end (status done); the table "
               "above still lists stopped runs.")
counted = ("done", "stopped") if state[K.WITH_STOPPED] else ("done",)
finished = [r for r in chosen if r.status in counted]
left_out = sum(r.status == "stopped" for r in chosen) if not state[K.WITH_STOPPED] else 0
if left_out:
    st.caption(f"{left_out} stopped run(s) left out of the means below (they did not train to the end).")
groups = {}
for r in finished:
    groups.setdefault(pair_of(r), []).append(r)
if not groups:
    st.info("No finished run matches the filters.")
for name, members in list(groups.items())[:6]:
    st.subheader(name)
    summaries = summarise_by_strategy(members)
    reference = next((s.mean for s in summaries if s.strategy == "target_only"), None)
    left, right = st.columns([3, 2], gap="large")
    # Titles above the charts, not in them: in a narrow chart a title runs under plotly's toolbar.
    with left:
        st.markdown("**Target accuracy by strategy** (mean ± std over seeds)")
        _export.show_figure(_figures.strategy_figure(summaries, None, reference), K.chart("compare", f"acc.{name}"))
        if any(s.runs == 1 for s in summaries):
            st.caption("Hatched bars rest on a single run: no spread, so no error bar; run more seeds to compare.")
    if any(s.ntg_mean is not None for s in summaries):
        with right:
            st.markdown("**Negative-transfer gap vs target_only** (positive = negative transfer)")
            _export.show_figure(_figures.ntg_figure(summaries, None), K.chart("compare", f"ntg.{name}"))
    else:
        right.caption("No NTG here: it needs labelled target examples (a target label budget) and a strategy "
                      "that uses the source.")
if len(groups) > 6:
    st.caption(f"{len(groups) - 6} more pairs: pick one with the Pair filter.")

# --- the NTG over seeds, one row per configuration ------------------------------------------------------
st.subheader("Negative-transfer gap over seeds, per configuration")
by_configuration = ntg_by_configuration(finished)
if by_configuration:
    ntg_table = _ntg_view.ntg_seeds_frame(by_configuration)
    st.dataframe(_ntg_view.style_ntg_verdicts(ntg_table), hide_index=True, column_config=_ntg_view.NTG_SEEDS_COLUMNS,
                 key=K.NTG_TABLE)
    st.caption("Runs that differ only in their seed form one configuration. NTG mean ± sd over its seeds, with "
               "the 95% Student-t interval of the mean: **red** when the whole interval is above 0 (negative "
               "transfer), **green** when below, **grey** when it contains 0 (within noise). One seed has no "
               "spread: run more seeds (change the seed in the sidebar).")
    _export.csv_download(ntg_table, "Download this table as CSV", "transfer-lab-ntg-over-seeds.csv",
                         K.download("compare", "ntg"))
else:
    st.caption("No finished run with an NTG matches the filters: the NTG needs labelled target examples (a "
               "target label budget) and a strategy that uses the source.")

# --- export and delete ---------------------------------------------------------------------------------
def delete_selected() -> None:
    """Delete button callback (runs before the page is drawn again, so the confirmation can be reset)."""
    run_id = state[K.DELETE_ID]
    state[K.DELETE_CONFIRM] = False
    try:
        if run_store.get_run(run_id).status in ACTIVE_STATUSES:
            _state.flash(f"Run {run_id} is still training: stop it on the Train page first.", kind="error")
            return
        delete_run(run_store, run_id, _runs.actor())  # only its owner or a teacher may
    except TransferLabError as exc:
        _state.flash(str(exc), kind="error")
        return
    if state.get(K.RUN_ID) == run_id:
        _runs.attach(None)
    _state.flash(f"Deleted run {run_id}.")


# --- the page -----------------------------------------------------------------------------------------
st.divider()
left, right = st.columns(2, gap="large")
with left:
    st.markdown("**Export**")
    buffer = io.StringIO()
    count = run_store.export_csv(buffer, runs=chosen)
    st.download_button(f"Download {count} runs as CSV", buffer.getvalue(), file_name="transfer-lab-runs.csv",
                       mime="text/csv", key=K.EXPORT, icon=":material/download:")
with right:
    st.markdown("**Delete a run**")
    ids = [r.id for r in chosen]
    labels = {r.id: _runs.run_label(r) for r in chosen}
    if not ids:
        st.caption("No run matches the filters.")
    else:
        if state.get(K.DELETE_ID) not in ids:
            state[K.DELETE_ID] = ids[0]
        st.selectbox("Run", ids, key=K.DELETE_ID, format_func=labels.get)
        st.checkbox("Yes, delete this run, its events and its checkpoint", key=K.DELETE_CONFIRM)
        st.button("Delete", key=K.DELETE, disabled=not state[K.DELETE_CONFIRM], icon=":material/delete:",
                  on_click=delete_selected)
