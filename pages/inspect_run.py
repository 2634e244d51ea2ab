"""Inspect: a finished run side by side with its source_only baseline (same pair, seed and schedule)."""
import numpy as np
import streamlit as st

from pages import _keys as K
from pages import _export, _figures, _live, _ntg_view, _policy, _runs, _shell
from pages import _url
from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.inspection import find_source_only, source_only_config
from tlcore.runs import ACTIVE_STATUSES
from tlcore.seeds import ntg_over_seeds
from tlcore.worker import get_worker

_shell.inside_app()
RELATION_STRATEGIES = ("gromov", "rkd")  # the runs whose checkpoints hold a coupling or a teacher

st.title("Inspect")
state = st.session_state
run_store = _runs.store()
store_path = str(run_store.path)

runs = [r for r in run_store.list_runs(status=("done", "stopped")) if r.checkpoint_path]
if not runs:
    st.info("No finished run to inspect yet: train one on the **Train** page (or run a preset on **Lab**).")
    _shell.page_links(("Train", "Train"), ("Lab", "Lab: presets"))
    st.stop()
by_id = {r.id: r for r in runs}
if state.get(K.INSPECT_RUN) not in by_id:
    state[K.INSPECT_RUN] = runs[0].id
url_run = st.query_params.get("run")
if url_run and url_run not in by_id:  # a link to a run that is not here: show the newest, train nothing
    state[K.INSPECT_FALLBACK] = (url_run, runs[0].id)
# The run, the projection and the colouring live in the URL (a shareable link).
_url.sync([_url.Field(K.INSPECT_RUN, codec=_url.STR, default=_url.NO_DEFAULT,
                      check=lambda i: None if i in by_id else "no finished run with this id in the run store"),
           K.PROJECTION, K.BY_CLASS])
st.selectbox("Run", list(by_id), key=K.INSPECT_RUN, format_func=lambda i: _runs.run_label(by_id[i]))
rec = by_id[state[K.INSPECT_RUN]]
config = RunConfig.from_dict(rec.config)
try:  # a run started from the command line may have read data the app may not (pages._policy)
    _policy.policy().check_specs((config.source, config.target), config.data_dir)
except TransferLabError as exc:
    st.error(f"This run's data cannot be read from the app on this server: {exc}")
    st.stop()
_ntg_view.ntg_badge(rec.metrics, ntg_over_seeds(rec, run_store))
if _runs.recipe_line(rec.metrics):
    st.caption(_runs.recipe_line(rec.metrics).replace("recipe:", "Recipe:", 1))

# --- relations (gromov's coupling, rkd's distance matrices) -------------------------------------------
if rec.strategy in RELATION_STRATEGIES:
    try:
        with st.spinner("Rebuilding the run's relations from its checkpoint…"):
            coupling, distances, heterogeneous = _runs.run_relations(store_path, rec.id, rec.updated_at)
    except TransferLabError as exc:
        st.error(str(exc))
        st.stop()
    if coupling is not None:
        st.subheader("The Gromov–Wasserstein coupling")
        names = [str(i) for i in range(len(coupling.per_class_transported_accuracy))]
        a, b = st.columns(2)
        a.metric("Transported labels right", f"{coupling.transported_accuracy:.3f}",
                 help="Share of the target training examples whose label, carried from the source through the "
                      "coupling, is their true label (the lab knows it; training never sees it).")
        b.metric("Examples matched", f"{len(coupling.source_labels)} → {len(coupling.target_labels)}",
                 help="Source and target examples in the GW problem (a seeded subsample above max_points).")
        st.caption("Rows: source examples by class; columns: target examples by their true class; each column "
                   "shows where that target example's mass came from. A right matching is block-diagonal; "
                   "on a symmetric structure the blocks can land off the diagonal (labels swapped).")
        left, right = st.columns(2, gap="large")
        with left:
            _export.show_figure(_figures.coupling_heatmap_figure(coupling, names, "Coupling, sorted by class"),
                                K.chart("inspect", f"coupling.{rec.id}"))
        if coupling.source_points is not None:
            with right:
                _export.show_figure(_figures.matching_lines_figure(
                    coupling, names, "Each target point and the source point it took most mass from"),
                    K.chart("inspect", f"matching.{rec.id}"))
    if distances is not None:
        st.subheader("Relations kept: teacher and student distances")
        st.caption("Pairwise feature distances between the same target test examples (sorted by class), each "
                   "over its mean: RKD trains the student to keep the teacher's relations.")
        names = [str(i) for i in sorted(set(distances.labels.tolist()))]
        _export.show_figure(_figures.distance_matrices_figure(distances, names),
                            K.chart("inspect", f"distances.{rec.id}"))
    if heterogeneous:
        st.info("This run's source and target live in different input spaces (a heterogeneous pair): the model "
                "takes target inputs only, so the source-versus-target views below (feature gap, embeddings, a "
                "source_only baseline) do not apply.")
        st.stop()

# --- the source_only baseline: stored, training, or started now ------------------------------------
training_baseline = None  # id of the baseline run while it trains
umaps = []  # (run id, updated_at) of the UMAPs still being computed
if rec.strategy == "source_only":
    base = rec
    st.caption("This run is itself source_only: there is no adaptation to compare with.")
else:
    base = find_source_only(run_store, config)
    if base is None:
        running = find_source_only(run_store, config, status="running")
        if running is None:
            queued = [r for r in run_store.list_runs(status=ACTIVE_STATUSES)
                      if r.tags.get("inspect_baseline_of") == rec.id]
            running = queued[0] if queued else None
        fallback = state.get(K.INSPECT_FALLBACK)
        if running is None and fallback is not None and fallback[1] == rec.id:
            # Shown in place of a run the link named: say so, and train its baseline only when asked.
            st.warning(f"Run `{fallback[0]}` was not found in the run store: showing the newest run, `{rec.id}`, "
                       "instead. Its source_only baseline is not trained yet.", icon=":material/search_off:")
            if not st.button("Train the source_only baseline", key=K.INSPECT_TRAIN_BASE,
                             icon=":material/play_arrow:"):
                running = False
            else:
                state.pop(K.INSPECT_FALLBACK, None)
        if running is None:
            try:
                _policy.admit(source_only_config(config))
                base_id = get_worker().start_run(source_only_config(config), run_store, with_baseline=False,
                                                 tags={"inspect_baseline_of": rec.id}, owner=_runs.owner())
                running = run_store.get_run(base_id)
            except TransferLabError as exc:
                st.error(f"The source_only baseline cannot be trained: {exc}")
        if running:
            training_baseline = running.id

try:
    with st.spinner("Rebuilding the run from its checkpoint…"):
        ins = _runs.run_inspection(store_path, rec.id, rec.updated_at)
        base_ins = _runs.run_inspection(store_path, base.id, base.updated_at) if base is not None else None
    pair = _runs.load_pair(config.source, config.target, config.seed, config.target_labels, data_dir=config.data_dir)
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()

# Left column: the baseline (before adaptation); right column: this run (after).
sides = [("source_only (before)", base, base_ins), (f"{rec.strategy} (after)", rec, ins)]
if rec.strategy == "source_only":
    sides = sides[1:]


@st.fragment(run_every=_live.PENDING_INTERVAL_S)
def baseline_progress(run_id: str) -> None:
    """The baseline's progress while it trains; the whole page is drawn again once it is done."""
    status = run_store.get_run(run_id).status
    if status not in ACTIVE_STATUSES:
        st.rerun()
    fraction, text = _live.progress(run_store.events(run_id), status)
    st.info(f"Training the source_only baseline (run `{run_id}`, same pair, seed and schedule) to compare with.")
    st.progress(fraction, text=text)


st.subheader("Domain gap on the learned features (test sets)")
columns = st.columns(len(sides), gap="large")
for column, (title, r, i) in zip(columns, sides):
    with column:
        st.markdown(f"**{title}**" + (f" · run `{r.id}`" if r is not None else ""))
        if i is None:
            if training_baseline is not None:
                baseline_progress(training_baseline)
            continue
        a, b, c = st.columns(3)
        ref = base_ins if (i is ins and base_ins is not None and rec.strategy != "source_only") else None
        a.metric("Target accuracy", f"{i.target_accuracy:.3f}",
                 delta=None if ref is None else f"{i.target_accuracy - ref.target_accuracy:+.3f}")
        mmd_text, mmd_hover = _figures.mmd2_shown(i.gap.mmd2)
        b.metric("MMD² (features)", mmd_text,
                 delta=None if ref is None else f"{i.gap.mmd2 - ref.gap.mmd2:+.4f}", delta_color="inverse",
                 help=f"Between source and target test features; lower = better aligned. {mmd_hover}")
        c.metric("Proxy A-distance", f"{i.gap.pad:.2f}",
                 delta=None if ref is None else f"{i.gap.pad - ref.gap.pad:+.2f}", delta_color="inverse",
                 help=f"0 = a linear classifier cannot tell the domains apart; 2 = perfectly "
                      f"(its held-out accuracy here: {i.gap.domain_accuracy:.2f}).")

# --- embeddings -----------------------------------------------------------------------------------
st.subheader("Source and target test embeddings")
a, b = st.columns([2, 3])
a.segmented_control("Projection", list(K.PROJECTIONS), key=K.PROJECTION,
                    help="UMAP keeps neighbourhoods (non-linear); PCA is linear and instant.")
b.toggle("Colour by class (source ●, target ◇)", key=K.BY_CLASS)
method = state.get(K.PROJECTION) or K.PROJECTIONS[0]
by_class = bool(state[K.BY_CLASS])
umap_info = _runs.umap_service().status()
columns = st.columns(len(sides), gap="large")
selected = None
for column, (title, r, i) in zip(columns, sides):
    with column:
        if i is None:
            st.caption("The embedding appears when the baseline has trained.")
            continue
        coords, label = None, "PCA"
        if method == "UMAP" and not umap_info["error"]:
            job = _runs.umap_of_run(store_path, r.id, r.updated_at, i.features, r.seed or 0)
            if job.done() and job.exception() is None:
                coords, seconds = job.result()
                label = f"UMAP ({seconds:.1f} s)"
            elif job.done():
                st.warning(f"UMAP failed ({job.exception()}); showing PCA.")
            else:
                umaps.append((r.id, r.updated_at))
                st.caption("UMAP is computing in the background"
                           + ("" if umap_info["ready"] else " (its one-time compilation is still warming up)")
                           + "; the PCA preview is shown meanwhile.")
                label = "PCA preview"
        if coords is None:
            coords = _runs.pca_of_run(store_path, r.id, r.updated_at)
        fig = _figures.embedding_figure(coords, i, by_class, f"{title}: {label}")
        event = _export.show_figure(fig, K.selection(r.id), on_select="rerun", selection_mode=("points", "box"))
        row = _figures.selected_row(event, fig)
        if row is not None:
            selected = (title, i, row)
st.caption("Hover over a point for its domain, class and prediction; click one to see its input (or pick "
           "**Box Select** in the chart's toolbar and drag a box).")
if selected is not None:
    title, i, row = selected
    domain = pair.source if i.domain[row] == 0 else pair.target
    idx = int(i.index[row])
    a, b = st.columns([1, 3])
    with a:
        if pair.kind == "image":
            st.image(_figures.upscale(_figures.to_uint8_image(domain.x_test[idx]), 6), width=168)
        else:
            st.code(f"x = {domain.x_test[idx].tolist()}", language=None)
    with b:
        names = i.class_names
        st.markdown(f"**{_figures.DOMAIN_NAMES[i.domain[row]]} test example #{idx}** (selected in *{title}*)  \n"
                    f"true class **{names[i.label[row]]}** · predicted by {title.split(' ')[0]}: "
                    f"**{names[i.prediction[row]]}**")

# --- decision boundaries (2-D inputs) -----------------------------------------------------------------
weights = ins.importance_weights
if ins.grid is not None:
    st.subheader("Decision boundaries")
    st.caption("Background: the model's prediction over the plane (blue: class 0, orange: class 1, the line at "
               "p = 0.5); points: source ● and target ✕ test examples in their true class colour."
               + (" Source training points are sized by their importance weight." if weights is not None else ""))
    columns = st.columns(len(sides), gap="large")
    for column, (title, r, i) in zip(columns, sides):
        if i is not None and i.grid is not None:
            with column:
                _export.show_figure(_figures.boundary_figure(i.grid, pair, title, weights if i is ins else None),
                                    K.chart("inspect", f"boundary.{r.id}"))
elif weights is not None:
    st.subheader("Importance weights")
    st.caption("Source training examples weighted by the estimated density ratio p_target(x) / p_source(x).")
    order = np.argsort(weights)
    a, b = st.columns(2)
    a.markdown("**Highest weights** (look most like the target)")
    a.image([_figures.upscale(_figures.to_uint8_image(pair.source.x_train[j]), 3) for j in order[::-1][:10]],
            caption=[f"{weights[j]:.2f}" for j in order[::-1][:10]])
    b.markdown("**Lowest weights**")
    b.image([_figures.upscale(_figures.to_uint8_image(pair.source.x_train[j]), 3) for j in order[:10]],
            caption=[f"{weights[j]:.2f}" for j in order[:10]])
# --- target errors ------------------------------------------------------------------------------------------
st.subheader("Errors on the target test set")
columns = st.columns(len(sides), gap="large")
for column, (title, r, i) in zip(columns, sides):
    if i is not None:
        with column:
            _export.show_figure(_figures.confusion_figure(i.confusion, i.class_names, f"Confusion matrix: {title}"),
                                K.chart("inspect", f"confusion.{r.id}"))
bars = [(title.split(" ")[0], i.per_class_accuracy, colour)
        for (title, _, i), colour in zip(sides, ("#9e9e9e", _figures.TARGET_COLOUR)) if i is not None]
_export.show_figure(_figures.per_class_figure(bars, ins.class_names), K.chart("inspect", "per_class"))
models = [(title.split(" ")[0], r.id, i) for title, r, i in sides if i is not None]
a, b = st.columns(2)
with a:
    _export.csv_download(_export.per_class_frame(models, ins.class_names), "Download per-class accuracy as CSV",
                         f"transfer-lab-run-{rec.id}-per-class.csv", K.download("inspect", "per_class"))
with b:
    _export.csv_download(_export.confusion_frame(models, ins.class_names), "Download the confusion matrices as CSV",
                         f"transfer-lab-run-{rec.id}-confusion.csv", K.download("inspect", "confusion"))


# --- keep checking what is still being computed ---------------------------------------------------------------
@st.fragment(run_every=_live.PENDING_INTERVAL_S)
def watch_umap(umaps: list) -> None:
    """Draw the page again once a UMAP has arrived."""
    if any(_runs.umap_done(store_path, run_id, updated_at) for run_id, updated_at in umaps):
        st.rerun()


if umaps:
    watch_umap(umaps)
