"""Queue: the jobs running and waiting for a slot, in the order they will start.

Everyone sees the queue (its length is what decides how long a Start waits) with their own jobs
marked; a teacher (the sidebar's token) sees every user's owner id, may stop any job, and sees
how many runs each user has stored.
"""
import time

import pandas as pd
import streamlit as st

from pages import _keys as K
from pages import _runs, _shell, _state, _url
from tlcore.errors import TransferLabError
from tlcore.worker import get_worker

_shell.inside_app()
_url.sync([], link=False)

st.title("Queue")
_state.flash()
state = st.session_state
worker = get_worker()
me = _runs.actor()


def owner_label(owner: str | None) -> str:
    if owner is not None and owner == me.owner:
        return "you"
    if me.teacher:
        return owner or "command line"
    return "another user"


def stop_job(job_id: str) -> None:
    """A Stop button's callback: the worker checks that this session may stop the job."""
    try:
        worker.stop(job_id, wait=1.0, actor=_runs.actor())
    except TransferLabError as exc:
        _state.flash(str(exc), kind="error")
    else:
        _state.flash(f"Stopped {job_id}.")


@st.fragment(run_every=2.0)
def queue_view() -> None:
    entries = worker.queue()
    running = sum(e.state == "running" for e in entries)
    per_run = worker.run_seconds()
    st.markdown(f"**{running} of {worker.slots} slots busy · {len(entries) - running} waiting** · each user may "
                f"have {worker.max_queued} jobs waiting"
                + (f" · a run takes about {per_run:.0f} s here" if per_run is not None else ""))
    if not entries:
        st.caption("Nothing is running or waiting.")
        return
    rows = [{"job": e.job_id, "owner": owner_label(e.owner), "what": e.label, "state": e.state,
             "position": e.position,
             "wait (s)": None if e.wait_s is None or e.state == "running" else round(e.wait_s),
             "progress": e.progress,
             "since": time.strftime("%H:%M:%S", time.localtime(e.started_at or e.submitted_at))}
            for e in entries]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="table.queue.jobs",
                 column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)})
    mine = [e for e in entries if me.may_change(e.owner)]
    if mine:
        st.markdown("**Stop**" + (" (teacher mode: any job)" if me.teacher else " (your jobs)"))
        for e in mine:
            st.button(f"Stop {e.job_id} · {e.label} · {e.state}", key=f"{K.QUEUE_STOP}.{e.job_id}",
                      on_click=stop_job, args=(e.job_id,), icon=":material/stop:")


queue_view()

if me.teacher:
    st.subheader("Every user's runs")
    records = _runs.store().list_runs(limit=1000)
    if records:
        frame = pd.DataFrame([{"owner": r.owner or "command line", "status": r.status} for r in records])
        table = frame.pivot_table(index="owner", columns="status", aggfunc="size", fill_value=0)
        st.dataframe(table, key="table.queue.owners")
        st.caption("The newest 1,000 runs, counted by owner and status. Every run can be read on the Compare "
                   "page; as a teacher you may delete any of them there.")
    else:
        st.caption("No runs stored yet.")
