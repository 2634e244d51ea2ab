"""Negative transfer: three sweeps that show when using a source makes the target model worse.

Each experiment is a sweep of short runs in the background worker (one progress bar for the
whole sweep; curves that fill in live); what the run store already holds for the settings shows
at once, so a sweep precomputed with ``tlcore sweep`` needs no waiting. With the default settings
and nothing stored yet, the result shipped with Transfer Lab shows, labelled as such, beside
"Run it live" (``tlcore.sweeps.shipped``).
"""
import streamlit as st

from pages import _keys as K
from pages import _sweep_ui as sw
from pages import _export, _policy, _runs, _shell, _state
from pages import _url
from tlcore.errors import TransferLabError
from tlcore.ntg import NEGATIVE_TRANSFER
from tlcore.strategies import adaptation_strategies, with_role
from tlcore.sweeps import (ALL_LABELS, MAX_SOURCES, SWEEPABLE_SHIFTS, BudgetResult, BudgetSweep, ShiftResult,
                           ShiftSweep, SourceResult, SourceSweep, plan_sweep, spec_from_dict)
from tlcore.config import RunConfig
from tlcore.sweeps.shipped import load_shipped, shipped_spec

_shell.inside_app()
sw.goto_train_if_requested()

state = st.session_state
TITLES = {"budget": "Label budget", "shift": "Shift strength", "source": "Which source?"}
TRANSFER_STRATEGIES = with_role("transfer")  # every grouping comes from the registry's roles
ADAPTATIONS = adaptation_strategies()
CHOICES = {  # settings with a fixed set of values (a link with another value is refused with a warning)
    ("budget", "adaptation"): ["none", *ADAPTATIONS],
    ("shift", "shift"): list(SWEEPABLE_SHIFTS),
    ("shift", "adaptation"): TRANSFER_STRATEGIES,
    ("source", "strategy"): TRANSFER_STRATEGIES,
}
RANGES = {"seeds": (1, 10), "epochs": (1, 500), "labels": (1, 100)}


def experiment_fields() -> list:
    """The chosen experiment's settings, in the URL as e.g. ``budget.target=moons:rotate=60``."""
    exp = state.get(K.NT_EXPERIMENT, K.EXPERIMENTS[0])
    prefix = K.nt(exp, "")
    fields = []
    for key in [k for k in K.DEFAULTS if k.startswith(prefix)]:
        name = key[len(prefix):]
        lo, hi = RANGES.get(name, (None, None))
        fields.append(_url.Field(key, f"{exp}.{name}", choices=CHOICES.get((exp, name)), lo=lo, hi=hi))
    return fields


# The whole setup lives in the URL (a teacher's link); ?sweep= names a running sweep job, so a
# refresh or a second tab shows the same sweep, live.
_url.sync([K.SEED, _url.Field(K.NT_EXPERIMENT, "experiment", choices=K.EXPERIMENTS), experiment_fields],
          own=("sweep",))
_linked = st.query_params.get("sweep")
if _linked and sw.job(_linked) is not None:
    _exp = sw.job_experiment(_linked)
    if _exp is not None and state.get(K.nt_state(_exp, "job")) != _linked:
        state[K.nt_state(_exp, "job")] = _linked
        state[K.nt_state(_exp, "spec")] = sw.job_spec(_linked)

st.title("Negative transfer")
_state.flash()
st.markdown(
    "Transfer learning does not always help. **Negative transfer** is when the model that uses the source ends "
    "*worse* on the target than a model trained on the target's few labels alone (`target_only`). Its size is the "
    "**negative-transfer gap**, NTG = target error with the source − target error without it (Wang et al., "
    "CVPR 2019): positive means the source hurt. Each experiment below is a sweep of short runs; red shading marks "
    "where a transfer strategy lies below `target_only`.")

experiment = st.radio("Experiment", K.EXPERIMENTS, format_func=TITLES.get, key=K.NT_EXPERIMENT, horizontal=True)


def seeds_of(count_key: str) -> tuple[int, ...]:
    first = _state.seed()
    return tuple(range(first, first + int(state[count_key])))


def spec_list(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").replace(";", ",").split(",") if part.strip()]


def budgets_of(text: str) -> tuple:
    budgets = []
    for part in spec_list(text):
        if part.lower() == ALL_LABELS:
            budgets.append(ALL_LABELS)
            continue
        try:
            budgets.append(int(part))
        except ValueError:
            raise TransferLabError(f"label budgets are whole numbers or 'all', separated by commas; "
                                   f"{part!r} is neither") from None
    return tuple(budgets)


def values_of(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in spec_list(text))
    except ValueError:
        raise TransferLabError(f"shift values are numbers separated by commas, got {text!r}") from None


def common_settings(exp: str) -> None:
    a, b = st.columns(2)
    a.number_input("Seeds (each point averaged over this many)", min_value=1, max_value=10, step=1,
                   key=K.nt(exp, "seeds"),
                   help="Seeds start at the sidebar's seed. More seeds: error bars and an honest 'within noise'.")
    b.number_input("Epochs per run", min_value=1, max_value=500, step=1, key=K.nt(exp, "epochs"))
    st.caption(_policy.limits_caption())


def base_config(exp: str) -> RunConfig:
    return RunConfig(epochs=int(state[K.nt(exp, "epochs")]), data_dir=_state.data_dir_setting())


def sweep_specs(spec) -> list[str]:
    return [spec.target, *spec.sources] if isinstance(spec, SourceSweep) else [spec.source, spec.target]


def budget_spec() -> BudgetSweep:
    exp = "budget"
    with st.expander("Settings", expanded=True):
        a, b = st.columns(2)
        a.text_input("Source", key=K.nt(exp, "source"), help=SPEC_HELP)
        b.text_input("Target", key=K.nt(exp, "target"), help=SPEC_HELP)
        a.selectbox("Adaptation strategy (besides finetune and target_only)", ["none", *ADAPTATIONS],
                    key=K.nt(exp, "adaptation"))
        b.text_input("Labelled target examples per class (k)", key=K.nt(exp, "budgets"),
                     help="Comma-separated; 'all' is the largest budget every class can give.")
        common_settings(exp)
    adaptation = state[K.nt(exp, "adaptation")]
    return BudgetSweep(source=state[K.nt(exp, "source")].strip(), target=state[K.nt(exp, "target")].strip(),
                       adaptation=None if adaptation == "none" else adaptation,
                       budgets=budgets_of(state[K.nt(exp, "budgets")]), seeds=seeds_of(K.nt(exp, "seeds")),
                       base=base_config(exp))


def shift_spec() -> ShiftSweep:
    exp = "shift"
    with st.expander("Settings", expanded=True):
        a, b = st.columns(2)
        a.text_input("Source", key=K.nt(exp, "source"), help=SPEC_HELP)
        b.text_input("Target", key=K.nt(exp, "target"), help=SPEC_HELP)
        a.selectbox("Shift to sweep", list(SWEEPABLE_SHIFTS), key=K.nt(exp, "shift"),
                    format_func=lambda name: f"{name}: {SWEEPABLE_SHIFTS[name].axis_label}")
        axis = SWEEPABLE_SHIFTS[state[K.nt(exp, "shift")]]
        b.text_input("Values (empty = the shift's defaults)", key=K.nt(exp, "values"),
                     placeholder=", ".join(f"{v:g}" for v in axis.default_values))
        a.selectbox("Adaptation strategy", TRANSFER_STRATEGIES,
                    key=K.nt(exp, "adaptation"))
        b.number_input("Labelled target examples per class (for target_only and the NTG)", min_value=1,
                       max_value=100, step=1, key=K.nt(exp, "labels"))
        st.caption(f"**{axis.name}** is applied to the **{axis.side}**: {axis.why}.")
        common_settings(exp)
    return ShiftSweep(source=state[K.nt(exp, "source")].strip(), target=state[K.nt(exp, "target")].strip(),
                      shift=state[K.nt(exp, "shift")], values=values_of(state[K.nt(exp, "values")]),
                      adaptation=state[K.nt(exp, "adaptation")], target_labels=int(state[K.nt(exp, "labels")]),
                      seeds=seeds_of(K.nt(exp, "seeds")), base=base_config(exp))


def source_spec() -> SourceSweep:
    exp = "source"
    with st.expander("Settings", expanded=True):
        a, b = st.columns(2)
        a.text_input("Target", key=K.nt(exp, "target"), help=SPEC_HELP)
        a.selectbox("Transfer strategy", TRANSFER_STRATEGIES,
                    key=K.nt(exp, "strategy"))
        a.number_input("Labelled target examples per class", min_value=1, max_value=100, step=1,
                       key=K.nt(exp, "labels"))
        b.text_area(f"Candidate sources (up to {MAX_SOURCES}, one per line)", key=K.nt(exp, "sources"), height=160,
                    help=SPEC_HELP)
        common_settings(exp)
    return SourceSweep(target=state[K.nt(exp, "target")].strip(), sources=tuple(spec_list(state[K.nt(exp, "sources")])),
                       strategy=state[K.nt(exp, "strategy")], target_labels=int(state[K.nt(exp, "labels")]),
                       seeds=seeds_of(K.nt(exp, "seeds")), base=base_config(exp))


SPEC_HELP = ("A dataset spec: a dataset name, then shifts after a colon, e.g. `moons:rotate=45`, "
             "`digits:permute`, `digits:invert,noise=0.2`. The Data page lists datasets and shifts.")
BUILDERS = {"budget": budget_spec, "shift": shift_spec, "source": source_spec}


# --- callbacks (they run before the page is drawn) -------------------------------------------------------
def start(exp: str, before_only: bool = False) -> None:
    state[K.nt_state(exp, "error")] = None
    try:
        spec = spec_from_dict(state[K.nt_state(exp, "pending")])
        job_id = sw.start_sweep(spec, before_only=before_only)
        state[K.nt_state(exp, "job")] = job_id
        state[K.nt_state(exp, "spec")] = spec.to_dict()
        state[K.nt_state(exp, "loaded")] = None
        st.query_params["sweep"] = job_id
    except TransferLabError as exc:
        state[K.nt_state(exp, "error")] = str(exc)


def stop(exp: str) -> None:
    sw.stop_sweep(state.get(K.nt_state(exp, "job")))


def clear_loaded(exp: str) -> None:
    state[K.nt_state(exp, "loaded")] = None


# --- figures and verdicts --------------------------------------------------------------------------
def noise_note(result, arm: str, xs) -> str:
    """Which of the points below target_only are beyond the seed-to-seed noise (their NTG's 95%
    interval above 0), in words."""
    points = [result.point(arm, x) for x in xs]
    sure = [p.x for p in points if p is not None and p.ntg is not None and p.ntg.label == NEGATIVE_TRANSFER]
    if all(p is not None and p.ntg is not None and p.ntg.n == 1 for p in points):
        return "One seed: no spread yet; add seeds to tell a real gap from noise."
    if not sure:
        return "Every one of these gaps is **within noise** over the seeds run (its 95% interval holds 0): add seeds."
    shown = ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in sure)
    return f"Beyond the noise (95% interval above 0) at {shown}."


def verdict(result) -> None:
    """One sentence per finding, in words a class can read off the projector."""
    if isinstance(result, BudgetResult):
        for arm in [a.label for a in result.spec.arms if a.label != "target_only"]:
            ks = result.negative_budgets(arm)
            measured = [p for p in result.points if p.arm == arm]
            if not measured:
                continue
            if ks:
                st.markdown(f"- :red[**{arm}** lies below target_only at k = {', '.join(map(str, ks))}]: "
                            f"negative transfer there (shaded). {noise_note(result, arm, ks)}")
            else:
                st.markdown(f"- :green[**{arm}** is at or above target_only at every k measured.]")
    elif isinstance(result, ShiftResult):
        for arm in [a.label for a in result.spec.arms if a.label != "target_only"]:
            if not any(p.arm == arm for p in result.points):
                continue
            crossover = result.crossover_of(arm)
            if crossover is None:
                st.markdown(f"- :green[**{arm}** stays at or above target_only over the whole sweep.]")
            else:
                below = tuple(p.x for p in result.points if p.arm == arm and p.below_target_only)
                st.markdown(f"- :red[**{arm}** turns negative at {result.spec.shift} = {crossover:g}] (dashed line): "
                            "there, training on the target's labels alone does better on average. "
                            f"{noise_note(result, arm, below)}")
        if result.spec.shift in ("label_noise", "permute"):
            st.caption("The input-space gap stays near 0 for this shift: the inputs are unchanged, only the "
                       "source's labels are. A gap measured on inputs cannot warn about a change of task.")
    elif isinstance(result, SourceResult):
        for c in result.correlations:
            if c.rho is None:
                continue
            good = (c.rho < 0) if c.score == "logme" else (c.rho > 0)
            name = {"logme": "LogME", "mmd2": "MMD²", "pad": "proxy A-distance"}[c.score]
            expected = "higher LogME, smaller NTG" if c.score == "logme" else f"larger {name}, larger NTG"
            colour = "green" if good else "red"
            st.markdown(f"- :{colour}[{name}: Spearman ρ = {c.rho:+.2f} with the NTG over {c.n} sources] "
                        f"({'as expected' if good else 'the wrong way'}: a useful score has {expected}).")


def draw(result, exp: str, live: bool = False) -> None:
    suffix = ".live" if live else ""
    for name, fig in sw.result_figures(result):
        _export.show_figure(fig, key=K.chart("nt", f"{exp}.{name}{suffix}"))
    if isinstance(result, SourceResult) and result.summaries and not any(s.ntg for s in result.summaries):
        st.info("Only the *before* part is measured so far: run the transfer from each source to see what it gives.")
    if not live:
        verdict(result)


@st.fragment(run_every=sw.SWEEP_INTERVAL_S)
def live_view(exp: str, job_id: str, spec_dict: dict) -> None:
    j = sw.job(job_id)
    result = sw.live_result(spec_from_dict(spec_dict), job_id)
    fraction, text = sw.job_progress(j, result)
    st.progress(fraction, text=f"Sweep: {text}")
    st.caption(sw.completeness(result) + " · the curves fill in as runs finish")
    draw(result, exp, live=True)
    if not j.alive:
        st.rerun()


@st.cache_resource(show_spinner=False)
def _shipped(kind: str):
    return load_shipped(kind)


def shipped_result(spec):
    """The result shipped with Transfer Lab for these settings (the page's defaults), or None."""
    kind = shipped_spec(spec)
    if kind is None:
        return None
    try:
        return _shipped(kind)
    except TransferLabError as exc:  # a file made for other defaults: say so, show nothing false
        st.warning(str(exc))
        return None


# --- the page ----------------------------------------------------------------------------------------
planned = 0
try:
    spec = BUILDERS[experiment]()
    missing = _runs.missing_downloads(spec.base, sweep_specs(spec))
    if missing:  # planning loads the data: never download from the page's thread, without progress
        raise TransferLabError(_runs.missing_downloads_message(missing, spec.base.data_dir, "come back here"))
    planned = len(plan_sweep(spec))  # resolves budgets and checks the specs before anything starts
    state[K.nt_state(experiment, "pending")] = spec.to_dict()
except TransferLabError as exc:
    spec = None
    st.error(f"**These settings do not make a sweep.** {exc}")

job_id = state.get(K.nt_state(experiment, "job"))
j = sw.job(job_id)
running = j is not None and j.alive

columns = st.columns([1, 1, 1, 2] if experiment == "source" else [1, 1, 3], vertical_alignment="center")
if experiment == "source":
    columns[0].button("Score sources", key=K.nt_button(experiment, "score"), disabled=running or spec is None,
                      on_click=start, args=(experiment, True), icon=":material/query_stats:", width="stretch",
                      help="Before: train source_only from each source, then measure MMD², the proxy A-distance "
                           "and LogME on the labelled target examples: a prediction before spending the transfer "
                           "runs.")
    columns[1].button("Run the transfer", key=K.nt_button(experiment, "start"), type="primary",
                      disabled=running or spec is None, on_click=start, args=(experiment,),
                      icon=":material/play_arrow:", width="stretch",
                      help="After: the transfer strategy from each source, with its matched target_only baseline, "
                           "and the NTG each source gave.")
    stop_column, info_column = columns[2], columns[3]
else:
    columns[0].button("Run sweep", key=K.nt_button(experiment, "start"), type="primary",
                      disabled=running or spec is None, on_click=start, args=(experiment,),
                      icon=":material/play_arrow:", width="stretch")
    stop_column, info_column = columns[1], columns[2]
stop_column.button("Stop", key=K.nt_button(experiment, "stop"), disabled=not running, on_click=stop,
                   args=(experiment,), icon=":material/stop:", width="stretch")
if spec is not None:
    info_column.caption(f"{planned} runs (+ matched target_only baselines); stored runs are reused, so a "
                        "sweep run before shows at once and a stopped one resumes.")
if state.get(K.nt_state(experiment, "error")):
    st.error(state[K.nt_state(experiment, "error")])

with st.expander("Load a sweep file (from `tlcore sweep … --export` or this page's download)"):
    upload = st.file_uploader("Sweep file", type=["json"], key=K.nt_button(experiment, "upload"))
    if upload is not None:
        try:
            loaded = sw.load_uploaded(upload.getvalue(), upload.name)
        except TransferLabError as exc:
            st.error(str(exc))
        else:
            if loaded.spec.kind != experiment:
                st.error(f"{upload.name} holds a {loaded.spec.kind} sweep; this is the {TITLES[experiment]} "
                         "experiment. Pick that experiment above to show it.")
            else:
                state[K.nt_state(experiment, "loaded")] = sw.export_json(loaded)

st.divider()
loaded_doc = state.get(K.nt_state(experiment, "loaded"))
if running:
    live_view(experiment, job_id, state[K.nt_state(experiment, "spec")])
elif loaded_doc is not None:
    result = sw.load_uploaded(loaded_doc, "loaded.json")
    st.info("Showing the loaded sweep file. Its points can be re-run live below.")
    st.button("Show the run store instead", key=K.nt_button(experiment, "unload"), on_click=clear_loaded,
              args=(experiment,))
    draw(result, experiment)
    sw.result_outputs(result, "nt", experiment)
elif spec is not None:
    finished = sw.job_result(job_id)
    with st.spinner("Reading the stored runs…"):
        result = finished if finished is not None and finished.spec == spec else sw.stored_result(spec)
    if j is not None:
        fraction, text = sw.job_progress(j, result)  # the bar shows the stored share, not a full bar
        st.progress(fraction, text=f"Last sweep: {text}")
        if j.error:
            st.error(j.error)
    shipped = shipped_result(spec) if not result.rows and not getattr(result, "scores", ()) else None
    if shipped is not None:
        note, live = st.columns([4, 1], vertical_alignment="center")
        note.info("**Shipped result**: these default settings were run when Transfer Lab was packaged "
                  f"({sw.completeness(shipped)}), so the figure shows at once. **Run it live** to train them here "
                  "and watch the curves fill in; stored runs replace this figure.", icon=":material/inventory_2:")
        live.button("Run it live", key=K.nt_button(experiment, "live"), on_click=start, args=(experiment,),
                    icon=":material/play_arrow:", width="stretch", disabled=running)
        draw(shipped, experiment)
        st.dataframe(sw.summary_table(shipped), hide_index=True, key=f"table.nt.{experiment}")
        sw.result_outputs(shipped, "nt", experiment)
    elif not result.rows and not getattr(result, "scores", ()):
        st.info("No runs of this sweep are stored yet: press **Run sweep**"
                + (" (or **Score sources** first)" if experiment == "source" else "")
                + ". Curves fill in live while it runs.")
    else:
        st.caption(sw.completeness(result))
        draw(result, experiment)
        st.dataframe(sw.summary_table(result), hide_index=True, key=f"table.nt.{experiment}")
        sw.result_outputs(result, "nt", experiment)
