"""Lab (home): what transfer learning is, one-click presets, recent runs."""
import streamlit as st

from pages import _keys as K
from pages import _runs, _shell, _state
from tlcore.presets import PRESETS

_shell.inside_app()

st.title("Transfer Lab")
_state.flash()
st.markdown(
    "**Transfer learning** reuses what a model learned on a *source* domain, where labels are plentiful, "
    "for a *target* domain, where they are scarce or missing. It works as long as the two domains are "
    "alike. Under **domain shift** (rotated or inverted images, new textures, other class frequencies) a "
    "source-trained model loses accuracy on the target; *adaptation* strategies align the two feature "
    "distributions (MMD, CORAL, adversarial DANN) or reweight source examples. When the source teaches "
    "the wrong thing, using it makes the target worse than training on the few target labels alone: "
    "**negative transfer**. Pick a preset, or set up your own pair on **Data** and a strategy on **Train**."
)

left, right = st.columns(2)
left.page_link("pages/negative.py", label="Negative transfer: when does using a source hurt? Three live sweeps",
               icon=":material/trending_down:")
right.page_link("pages/lessons.py", label="Lessons: six one-click classroom demonstrations, results at once",
                icon=":material/school:")

_shell.page_links(("Data", "Data: set up your own pair"), ("Train", "Train: pick a strategy and start"))

st.subheader("Presets")
columns = st.columns(len(PRESETS))
for column, preset in zip(columns, PRESETS.values()):
    with column.container(border=True, height="stretch"):  # cards of one height, whatever their text
        st.markdown(f"**{preset.title}**")
        st.write(preset.explanation)
        st.caption(f"Look for: {preset.look_for}")
        cfg = preset.config
        st.caption(f"`{cfg.source}` → `{cfg.target}` · {cfg.strategy} · {cfg.epochs} epochs"
                   + (f" · {cfg.target_labels} labels/class" if cfg.target_labels else "")
                   + (f" · compared with {', '.join(preset.compare_with)}" if preset.compare_with else ""))
# The buttons in a row of their own, so that they line up under cards of different lengths.
for column, preset in zip(st.columns(len(PRESETS)), PRESETS.values()):
    column.button("Run this preset", key=K.preset(preset.name), type="primary", width="stretch",
                  on_click=_runs.run_preset, args=(preset.name,))
if st.session_state.pop(K.GOTO_TRAIN, False):
    st.switch_page("pages/train.py")

st.subheader("Recent runs")
recent = _runs.store().list_runs(limit=10)
if not recent:
    st.info("No runs yet. Start one with a preset above, or on the **Train** page.")
    _shell.page_links(("Train", "Open Train"))
else:
    table = _runs.runs_frame(recent)
    event = st.dataframe(table, hide_index=True, column_config=_runs.RUN_COLUMNS, on_select="rerun",
                         selection_mode="single-row", key=K.RECENT)
    rows = event["selection"]["rows"] if event else []
    if rows:
        chosen = recent[rows[0]]
        left, right, _ = st.columns([1, 1, 3])
        if left.button("Open on Train", key=K.OPEN_TRAIN):
            _runs.attach(chosen.id)
            st.switch_page("pages/train.py")
        if right.button("Inspect", key=K.OPEN_INSPECT, disabled=chosen.status not in ("done", "stopped")):
            st.session_state[K.INSPECT_RUN] = chosen.id
            st.switch_page("pages/inspect_run.py")
    else:
        st.caption("Select a row to open the run on Train or Inspect.")
