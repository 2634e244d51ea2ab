"""Lessons: one-click classroom sweeps, each a short explanation, a figure and a checked claim.

A lesson shows at once when its sweep is in the run store (``tlcore sweep LESSON``) or from
the result shipped with Transfer Lab (computed on 2 CPU cores); it can also run live, through
the same worker as every sweep, and any point can be re-run live on the Train page.
"""
import streamlit as st

from pages import _keys as K
from pages import _sweep_ui as sw
from pages import _export, _shell, _state
from pages import _url
from tlcore.errors import TransferLabError
from tlcore.lessons import LESSONS, load_precomputed, precomputed_path
from tlcore.sweeps import BudgetSweep, plan_sweep

_shell.inside_app()
sw.goto_train_if_requested()

state = st.session_state
NAMES = list(LESSONS)
state.setdefault(K.LESSON, NAMES[0])
_url.sync([_url.Field(K.LESSON, "lesson", default=NAMES[0], choices=NAMES)])  # a link opens one lesson

st.title("Lessons")
_state.flash()
st.markdown("Six short lessons for a class. Each one is a small sweep on the built-in data, with a claim that "
            "Transfer Lab's tests check over three seeds. Pick one, read it out, then **show the result** "
            "(instant) or **run it live** and watch the curves fill in.")

name = st.selectbox("Lesson", NAMES, key=K.LESSON,
                    format_func=lambda n: f"{NAMES.index(n) + 1}. {LESSONS[n].title}")
lesson = LESSONS[name]
spec = lesson.sweep


def start() -> None:
    state[K.lesson_state("error")] = None
    state[K.lesson_state("loaded")] = None
    try:
        state[K.lesson_state("job")] = sw.start_sweep(LESSONS[state[K.LESSON]].sweep)
        state[K.lesson_state("job_lesson")] = state[K.LESSON]
    except TransferLabError as exc:
        state[K.lesson_state("error")] = str(exc)


def stop() -> None:
    sw.stop_sweep(state.get(K.lesson_state("job")))


def show_precomputed() -> None:
    state[K.lesson_state("error")] = None
    try:
        result = load_precomputed(state[K.LESSON])
    except TransferLabError as exc:
        state[K.lesson_state("error")] = str(exc)
        return
    if result is None:
        state[K.lesson_state("error")] = (f"No precomputed result ships for this lesson (expected "
                                          f"{precomputed_path(state[K.LESSON])}). Run it live, or precompute it "
                                          f"with: tlcore sweep {state[K.LESSON]}")
        return
    state[K.lesson_state("loaded")] = (state[K.LESSON], sw.export_json(result))


def clear_loaded() -> None:
    state[K.lesson_state("loaded")] = None


st.header(lesson.title)
st.markdown(lesson.explanation)
st.info(f"**Look for:** {lesson.look_for}", icon=":material/visibility:")
with st.expander("What runs"):
    if isinstance(spec, BudgetSweep):
        st.markdown(f"`{spec.source}` → `{spec.target}` · arms: {', '.join(a.label for a in spec.arms)} · "
                    f"k = {', '.join(map(str, spec.budgets))} · {spec.base.epochs} epochs")
    else:
        st.dataframe([{"arm": label, "source": c.source, "target": c.target, "strategy": c.strategy,
                       "params": ", ".join(f"{k}={v}" for k, v in c.params.items()), "labels/class": c.target_labels,
                       "epochs": c.epochs} for label, c in spec.arms], hide_index=True)
    st.caption(f"Seeds {', '.join(map(str, spec.seeds))}: {len(plan_sweep(spec))} runs in all (plus matched "
               f"target_only baselines). From a terminal: `tlcore sweep {name}` (stores them for this page) or "
               f"`tlcore sweep {name} --export FILE.json`.")

job_id = state.get(K.lesson_state("job"))
j = sw.job(job_id) if state.get(K.lesson_state("job_lesson")) == name else None
running = j is not None and j.alive
a, b, c, _ = st.columns([1.2, 1, 1, 2], vertical_alignment="center")
a.button("Show the result", key=K.lesson_button("precomputed"), on_click=show_precomputed, type="primary",
         icon=":material/bolt:", width="stretch", disabled=running,
         help="The lesson's sweep as computed on 2 CPU cores and shipped with Transfer Lab: no waiting.")
b.button("Run it live", key=K.lesson_button("start"), on_click=start, icon=":material/play_arrow:",
         width="stretch", disabled=running,
         help="Run the sweep here; runs already in the store are reused.")
c.button("Stop", key=K.lesson_button("stop"), on_click=stop, icon=":material/stop:", width="stretch",
         disabled=not running)
if state.get(K.lesson_state("error")):
    st.error(state[K.lesson_state("error")])


def claims(result) -> None:
    st.subheader("The claim, checked on this result")
    for check in lesson.check(result):
        if not check.seeds:
            st.markdown(f"- ⏳ {check.text}: not measured yet")
            continue
        spread = f" ± {check.std_difference:.3f}" if check.std_difference is not None else ""
        mark = ":green[✔ holds]" if check.holds else ":red[✘ does not hold]"
        st.markdown(f"- {mark}: {check.text} — difference {check.mean_difference:+.3f}{spread} over seeds "
                    f"{', '.join(map(str, check.seeds))}")


def draw(result, live: bool = False) -> None:
    for fig_name, fig in sw.result_figures(result):
        fig.update_layout(title={"text": lesson.title})
        _export.show_figure(fig, key=K.chart("lesson", f"{fig_name}{'.live' if live else ''}"))


@st.fragment(run_every=sw.SWEEP_INTERVAL_S)
def live_view(job_id: str) -> None:
    j = sw.job(job_id)
    result = sw.live_result(spec, job_id)
    fraction, text = sw.job_progress(j, result)
    st.progress(fraction, text=f"Lesson sweep: {text}")
    st.caption(sw.completeness(result) + " · bars fill in as runs finish")
    draw(result, live=True)
    if not j.alive:
        st.rerun()


st.divider()
loaded = state.get(K.lesson_state("loaded"))
if running:
    live_view(job_id)
elif loaded is not None and loaded[0] == name:
    result = sw.load_uploaded(loaded[1], f"{name}.json")
    st.caption(f"Precomputed result shipped with Transfer Lab ({sw.completeness(result)}). Re-run any point live "
               "below, or run the whole lesson live.")
    st.button("Show the run store instead", key=K.lesson_button("unload"), on_click=clear_loaded)
    draw(result)
    claims(result)
    sw.result_outputs(result, "lesson", name)
else:
    with st.spinner("Reading the stored runs…"):
        result = sw.stored_result(spec)
    if j is not None:
        fraction, text = sw.job_progress(j, result)
        st.progress(fraction, text=f"Last run of this lesson: {text}")
        if j.error:
            st.error(j.error)
    if not result.rows:
        st.info("This lesson's runs are not in the run store yet: **Show the result** for the precomputed figure, "
                "or **Run it live**.")
    else:
        st.caption(f"From the run store: {sw.completeness(result)}.")
        draw(result)
        claims(result)
        sw.result_outputs(result, "lesson", name)
