"""Data: choose the source and the target, see them, and measure their gap before training."""
import streamlit as st

from pages import _keys as K
from pages import _export, _figures, _runs, _shell, _state
from pages import _url
from pages._sources import render_data_sources
from tlcore.data import SHIFTS
from tlcore.errors import TransferLabError
from tlcore.embed import project_pca
from tlcore.inspection import class_examples
from tlcore.strategies import STRATEGIES, heterogeneous_strategies

_shell.inside_app()
_url.sync([K.SEED, *_url.data_fields()])  # the page's settings live in the URL (a shareable link)

st.title("Data")
st.caption("Pick a source and a target (built-in domains, torchvision datasets or your own images) and shift "
           "them. The Train page trains on this pair.")


def domain_controls(role: str) -> None:
    st.subheader(role.capitalize())
    st.selectbox("Dataset", _state.dataset_choices(), key=K.dataset(role), format_func=_state.dataset_label,
                 help=_state.dataset_help())
    kind = _state.dataset_info(st.session_state[K.dataset(role)]).kind
    basic = [c for c in _state.SHIFT_CONTROLS if not c.advanced and _state.applies(c, kind)]
    more = [c for c in _state.SHIFT_CONTROLS if c.advanced and _state.applies(c, kind)]
    for c in basic:
        shift_widget(role, c, kind)
    with st.expander("More shifts"):
        for c in more:
            shift_widget(role, c, kind)
    skipped = [c.name for c in _state.SHIFT_CONTROLS if not _state.applies(c, kind)]
    if skipped:
        st.caption(f"Only for images: {', '.join(skipped)}.")
    st.code(_state.spec_from_state(role), language=None)


def shift_widget(role: str, c: "_state.ShiftControl", kind: str) -> None:
    key, help_text = K.shift(role, c.name), SHIFTS[c.name].help
    if isinstance(c.neutral, bool):
        st.checkbox(c.label, key=key, help=help_text)
        return
    lo, hi = _state.shift_range(c, kind)
    value = st.session_state.get(key, c.neutral)
    if c.neutral is None:
        st.number_input(c.label, min_value=float(lo), max_value=float(hi), step=float(c.step), key=key,
                        help=help_text, placeholder="not applied")
        return
    if not lo <= value <= hi:  # e.g. noise 2.0 on moons, then switched to digits (range [0, 1])
        st.session_state[key] = float(min(max(value, lo), hi))
    st.slider(c.label, min_value=float(lo), max_value=float(hi), step=float(c.step), key=key, help=help_text)


left, right = st.columns(2, gap="large")
with left:
    domain_controls("source")
with right:
    domain_controls("target")
st.number_input("Target label budget (labelled target examples per class; 0 = unsupervised adaptation)",
                min_value=0, max_value=100, step=1, key=K.BUDGET)
if not render_data_sources():  # data directory, downloads, your own images; False: files still missing
    st.stop()

source, target = _state.spec_from_state("source"), _state.spec_from_state("target")
seed, budget = _state.seed(), int(st.session_state[K.BUDGET])
try:
    with st.spinner("Loading the pair…"):
        pair = _runs.load_pair(source, target, seed, budget, heterogeneous=True)
except TransferLabError as exc:
    st.error(_state.explain_pair_error(exc))
    st.stop()

if pair.heterogeneous:
    accepting = heterogeneous_strategies()
    others = [name for name in STRATEGIES if name not in accepting]
    st.warning(
        f"**A heterogeneous pair:** the source has {pair.source.kind} inputs of shape {pair.source.input_shape} and "
        f"the target {pair.target.kind} inputs of shape {pair.target.input_shape}, so no model takes both. "
        f"Only **{', '.join(accepting)}** can train on it (gromov matches the domains by the structure within "
        f"each; the references never see the source). The others ({', '.join(others)}) refuse it with an "
        "error saying why.")

st.divider()
st.subheader("Examples per class" if pair.kind == pair.target.kind == "image" else "The two domains")
left, right = st.columns(2, gap="large")
for column, role, domain in ((left, "source", pair.source), (right, "target", pair.target)):
    with column:
        if domain.kind == "image":
            rows = class_examples(domain.y_train, domain.num_classes, per_class=8, seed=seed)
            _export.show_figure(_figures.image_grid_figure(domain.x_train, rows, domain.class_names,
                                                           f"{role}: {domain.name}"),
                                K.chart("data", f"grid.{role}"))
            continue
        x = domain.x_train.numpy()
        title = f"{role}: {domain.name}"
        if x.shape[1] != 2:  # e.g. blobs:embed=20: its first two principal components
            x, title = project_pca(x), f"{title} (first 2 of {x.shape[1]} dimensions, PCA)"
        _export.show_figure(_figures.points_figure(x, domain.y_train.numpy(), domain.class_names, title, height=380),
                            K.chart("data", f"points.{role}"))

_export.show_figure(_figures.class_balance_figure(pair.source.class_counts(), pair.target.class_counts(),
                                                pair.class_names),
                    K.chart("data", "balance"))

st.subheader("Preprocessing")
st.markdown("\n".join(f"- {line}" for line in pair.describe()))
for warning in pair.warnings():
    st.warning(f"Data: {warning}", icon=":material/warning:")

st.subheader("Domain gap before training")
if pair.heterogeneous:
    st.caption("The inputs live in different spaces, so no distance between them (MMD, a domain classifier) "
               "is defined: the gap is measured only for pairs that share an input space.")
    st.stop()
with st.spinner("Measuring the gap between the raw inputs…"):
    gap, cloud = _runs.pair_gap(source, target, seed)
a, b, c = st.columns(3)
mmd_text, mmd_hover = _figures.mmd2_shown(gap.mmd2)
a.metric("MMD² (raw inputs)", mmd_text,
         help="Unbiased multi-kernel maximum mean discrepancy between the source and target training inputs. "
              f"0 = same distribution. {mmd_hover}")
b.metric("p-value (permutation test)", f"{gap.p_value:.3f}",
         help="Probability of an MMD² at least this large if both domains came from one distribution "
              "(200 permutations). Small = the shift is real.")
c.metric("Proxy A-distance", f"{gap.pad:.2f}",
         help=f"2(1 − 2ε) for a linear domain classifier with held-out error ε (its accuracy: "
              f"{gap.domain_accuracy:.2f}). 0 = indistinguishable, 2 = perfectly separable.")
st.caption(f"Measured on {_runs.gap_sample(gap)}, the same sample as `tlcore gap --source {source} "
           f"--target {target} --seed {seed}` draws, so both give the same numbers."
           + (f" MMD² is shown clipped at 0; the raw unbiased estimate is {gap.mmd2:.4f} (hover for why)."
              if gap.mmd2 < 0 else ""))
view = "the inputs themselves (2-D)" if pair.input_shape == (2,) else "the first two principal components (PCA)"
_export.show_figure(_figures.cloud_figure(cloud, pair.class_names, f"Raw inputs by domain: {view}"),
                    K.chart("data", "cloud"))
