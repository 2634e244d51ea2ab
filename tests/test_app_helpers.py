"""The app's pure helpers (pages/_live.py, _state.py, _runs.py): events to curves, progress text, shift controls."""
from pages import _keys as K
from pages import _live, _state
from tlcore.data import SHIFTS


def step(n, phase="adapt", **losses):
    return {"kind": "step", "step": n, "total_steps": 100, "phase": phase, "losses": losses,
            "elapsed_s": n / 10}


def evaluation(n, **extras):
    return {"kind": "eval", "step": n, "total_steps": 100, "source_accuracy": 0.9, "target_accuracy": 0.5,
            "extras": extras, "elapsed_s": n / 10}


def test_series_aligns_curves_and_marks_phase_changes():
    events = [{"kind": "started"}, step(10, "pretrain", task=1.0, total=1.0), evaluation(10, feature_mmd2=0.1),
              step(20, "pretrain", task=0.5, total=0.5), step(30, "finetune", task=0.4, domain=0.7, total=1.1),
              evaluation(30, feature_mmd2=0.05, domain_accuracy=0.6)]
    s = _live.series(events)
    assert s["steps"] == [10, 20, 30] and s["phases"] == [(20, "finetune")]
    assert s["losses"] == {"task": [1.0, 0.5, 0.4], "domain": [None, None, 0.7]}  # "total" is not drawn
    assert s["extras"] == {"feature_mmd2": [0.1, 0.05], "domain_accuracy": [None, 0.6]}
    names = [name for name, _ in _live.live_figures(events)]
    assert names == ["losses", "accuracy", "domain", "mmd"]


def test_live_charts_carry_no_title_under_the_toolbar_and_no_made_up_axes_when_empty():
    """Issue 12: titles ran into plotly's toolbar in half-width charts; empty charts showed -1…6."""
    events = [{"kind": "started"}, step(10, task=1.0, total=1.0), evaluation(10, feature_mmd2=-0.001,
                                                                            domain_accuracy=0.6)]
    for name, fig in _live.live_figures(events):
        assert fig["layout"]["title"] is None and _live.chart_head(name).startswith("**")
        assert fig["layout"]["xaxis"].get("showticklabels", True) is True
    assert "below 0" in _live.chart_head("mmd")
    for name, fig in _live.live_figures([]):
        layout = fig["layout"]
        assert layout["xaxis"]["showticklabels"] is False and layout["yaxis"]["showticklabels"] is False
        assert layout["xaxis"]["range"] == [0, 1]
        assert any(a["text"] == "appears when the run starts" for a in layout["annotations"])


def test_progress_reads_steps_and_eta_then_the_result():
    fraction, text = _live.progress([step(25, task=1.0)], "running")
    assert fraction == 0.25 and text.startswith("step 25 / 100") and "ETA 8 s" in text
    assert _live.progress([], "queued") == (0.0, "starting…")
    done = [step(40, task=1.0), {"kind": "result", "status": "stopped", "steps": 40, "elapsed_s": 4.0}]
    fraction, text = _live.progress(done, "stopped")
    assert fraction == 0.4 and text.startswith("stopped after 40 / 100 steps")


def test_the_shown_status_follows_the_events_past_a_stale_queued_record():
    """The Train header said "queued" while the bar counted steps (issue 12, item 7)."""
    assert _live.shown_status([step(25, task=1.0)], "queued") == "running"
    assert _live.shown_status([], "queued") == "queued"
    assert _live.shown_status([step(25, task=1.0)], "stopped") == "stopped"


def test_long_curves_are_thinned_for_display_keeping_the_ends():
    events = [step(i, task=float(i)) for i in range(1, 2001)]
    s = _live.thinned(_live.series(events))
    assert len(s["steps"]) <= _live.MAX_CURVE_POINTS + 1
    assert s["steps"][0] == 1 and s["steps"][-1] == 2000 and s["losses"]["task"][-1] == 2000.0


def test_every_engine_shift_has_a_control_and_specs_map_to_controls():
    assert set(_state.CONTROLS) == set(SHIFTS)
    values = _state.spec_state("target", "digits:rotate=30,invert,permute")
    assert values[K.dataset("target")] == "digits"
    assert values[K.shift("target", "rotate")] == 30.0 and values[K.shift("target", "invert")] is True
    assert values[K.shift("target", "permute")] == 1.0 and values[K.shift("target", "noise")] == 0.0
    rotate = _state.spec_state("source", "moons:rotate=300")[K.shift("source", "rotate")]
    assert rotate == 180.0  # clipped to the slider


def test_default_state_holds_every_strategy_parameter():
    state = _state.default_state()
    assert state[K.param("dann", "weight")] == 1.0 and state[K.param("finetune", "reset_head")] is False
    assert all(key.startswith(("w.", "s.")) for key in state)


def test_data_path_note_says_how_the_data_reached_the_model():
    from pages import _runs
    assert _runs.data_path_note({}) == ""
    assert "streamed" in _runs.data_path_note({"data_mode": "stream"})
    note = _runs.data_path_note({"data_mode": "resident",
                                 "batch_size_fit": {"requested": 256, "chosen": 96, "tried": [], "device": "cuda"}})
    assert "resident" in note and "reduced from 256 to 96" in note
    fits = _runs.data_path_note({"data_mode": "resident", "batch_size_fit": {"requested": 64, "chosen": 64}})
    assert "reduced" not in fits and "fits" in fits


class _Run:
    def __init__(self, strategy, seed, **metrics):
        self.strategy, self.seed, self.metrics = strategy, seed, metrics


def test_ntg_colours_red_for_negative_green_for_positive_grey_for_zero_and_noise():
    from pages import _figures as F
    from tlcore.ntg import summarise_ntg
    assert F.ntg_colour(0.2) == F.BAD and F.ntg_colour(-0.2) == F.GOOD
    assert F.ntg_colour(0.0) == F.NEUTRAL  # no effect: neither hurt nor helped
    assert F.ntg_colour(summarise_ntg([0.2, 0.25, 0.3])) == F.BAD
    assert F.ntg_colour(summarise_ntg([0.1, -0.05])) == F.NEUTRAL  # within noise
    assert F.ntg_colour(summarise_ntg([-0.1])) == F.GOOD  # one seed: its sign
    assert F.ntg_colour(None) == F.MISSING


def test_comparison_figures_take_a_single_run_without_a_spread():
    from pages import _figures as F
    from tlcore.summary import summarise_by_strategy
    one = summarise_by_strategy([_Run("finetune", 0, target_accuracy=0.5, ntg=0.0)])
    assert one[0].std is None and one[0].ntg_std is None
    acc = F.strategy_figure(one, "accuracy")
    assert acc.data[0].error_y.visible is False and "±" not in acc.data[0].text[0]
    ntg = F.ntg_figure(one, "ntg")
    assert list(ntg.data[0].marker.color) == [F.NEUTRAL] and ntg.data[0].error_y.visible is False
    several = summarise_by_strategy([_Run("dann", s, target_accuracy=0.5 + s / 10, ntg=0.1 * s) for s in (1, 2, 3)])
    assert F.ntg_figure(several, "ntg").data[0].error_y.visible is True


def test_live_refresh_follows_the_run_pace_with_a_band_against_flipping():
    """Issue 14: a refresh faster than the run logs only costs the CPU that training shares."""
    def paced(gap, n=6):
        return [step(10 * (i + 1), task=1.0) | {"elapsed_s": gap * i} for i in range(n)]

    assert _live.refresh_interval([], 0.5) == 0.5                    # nothing to go by yet
    assert _live.refresh_interval(paced(0.05), 0.5) == 0.5           # a fast run: as fast as allowed
    assert _live.refresh_interval(paced(1.7), 0.5) == 2.0            # a slow run: polled every 2 s
    assert _live.refresh_interval(paced(30.0), 0.5) == 5.0           # never slower than 5 s
    assert _live.refresh_interval(paced(0.6), 0.5) == 0.5            # inside the band: no change
    assert _live.refresh_interval(paced(0.55), 1.0) == 1.0
    assert _live.refresh_interval(paced(0.2), 2.0) == 0.5            # faster again (viewers left)


def test_live_figures_are_rebuilt_only_when_events_arrive():
    memo = _live.FigureMemo()
    events = [{"kind": "started"}, step(10, task=1.0, total=1.0)]
    first = memo.figures("r1", events)
    assert memo.figures("r1", list(events)) is first                 # nothing new: the same figures
    events.append(step(20, task=0.5, total=0.5))
    again = memo.figures("r1", events)
    assert again is not first and again[0][1]["data"][0]["y"] == [1.0, 0.5]
    assert memo.figures("r2", events) is not again                   # another run


def test_presentation_mode_enlarges_a_copy_of_a_figure():
    from types import SimpleNamespace

    import plotly.graph_objects as go

    from pages import _figures as F
    from pages import _present

    events = [{"kind": "started"}, step(10, task=1.0, total=1.0), evaluation(10)]
    name, fig = _live.live_figures(events)[1]
    big = _present.enlarge(fig)
    assert big["layout"]["font"]["size"] > fig["layout"]["font"]["size"]
    assert big["data"][0]["line"]["width"] > fig["data"][0]["line"]["width"]
    assert big["data"][0]["marker"]["size"] > 6 and "size" not in fig["data"][0].get("marker", {})
    bar = F.strategy_figure([SimpleNamespace(strategy="dann", mean=0.8, std=None, runs=1)], None)
    bigger_bar = _present.enlarge(bar)  # a Bar has no marker size: none is added
    assert "size" not in bigger_bar["data"][0].get("marker", {})
    go.Figure(bigger_bar)  # still a valid figure
