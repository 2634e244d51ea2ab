"""The training loop: determinism, stopping, NaN handling, devices, events."""
import sys
import threading

import pytest
import torch

from tlcore import events as ev
from tlcore.api import run_experiment
from tlcore.data import make_pair
from tlcore.data.domain import DomainPair
from tlcore.device import select_device
from tlcore.errors import DeviceError, NonFiniteLossError, UnknownNameError, ConfigError
from tlcore.models import build_model
from tlcore.runs import RunStore
from tlcore.train import Trainer

from helpers import fast_config, strip_timing


def _history(config):
    return strip_timing([ev.to_dict(e) for e in Trainer(config).run()])


@pytest.mark.parametrize("strategy,source,target", [
    ("dann", "moons", "moons:rotate=30"),
    ("mmd", "digits", "digits:rotate=20"),
])
def test_same_seed_same_history(strategy, source, target):
    config = fast_config(strategy=strategy, source=source, target=target, seed=3)
    assert _history(config) == _history(config)


def test_different_seed_different_history():
    assert _history(fast_config(seed=1)) != _history(fast_config(seed=2))


def test_stop_flag_stops_between_steps():
    stop = threading.Event()
    config = fast_config(epochs=50, log_every=1)
    seen = []
    for e in Trainer(config).run(stop):
        seen.append(e)
        if isinstance(e, ev.StepEvent) and e.step == 7:
            stop.set()
    result = seen[-1]
    assert isinstance(result, ev.ResultEvent)
    assert result.status == "stopped" and result.steps == 7 < seen[0].total_steps


def _nan_pair():
    pair = make_pair("moons", "moons:rotate=30", seed=0)
    x = pair.source.x_train.clone()
    x[5] = float("nan")
    source = pair.source.with_steps("a NaN planted for the test", x_train=x)
    return DomainPair(source, pair.target, 0, pair.target_labelled, pair.target_unlabelled)


def test_nan_loss_raises_with_step():
    trainer = Trainer(fast_config(), pair=_nan_pair())
    with pytest.raises(NonFiniteLossError) as info:
        list(trainer.run())
    assert 0 <= info.value.step < trainer.ctx.steps_per_epoch
    assert "NaN or infinite" in str(info.value) and f"step {info.value.step}" in str(info.value)


def test_nan_loss_marks_run_failed_with_step(monkeypatch):
    import tlcore.api as api
    store = RunStore()
    original = api.Trainer
    monkeypatch.setattr(api, "Trainer", lambda config: original(config, pair=_nan_pair()))
    with pytest.raises(NonFiniteLossError):
        run_experiment(fast_config(), store=store)
    (run,) = store.list_runs()
    assert run.status == "failed"
    assert "NaN" in run.error and run.metrics["failed_step"] >= 0


def test_bad_input_leaves_store_untouched():
    store = RunStore()
    for bad in (dict(strategy="nope"), dict(source="nosuchdata"), dict(target="digits"),
                dict(strategy="target_only", target_labels=0), dict(device="cuda:7"),
                dict(strategy="finetune", target_labels=100000)):
        with pytest.raises(Exception) as info:
            run_experiment(fast_config(**bad), store=store)
        assert "TransferLabError" in [c.__name__ for c in type(info.value).__mro__], (bad, info.value)
    assert store.list_runs() == []


def test_unknown_strategy_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="dann.*importance_weighting"):
        Trainer(fast_config(strategy="danm"))


def test_bad_strategy_param_is_rejected():
    with pytest.raises(ConfigError, match="unknown setting"):
        Trainer(fast_config(strategy="dann", params={"wieght": 2}))
    with pytest.raises(ConfigError, match="weight"):
        Trainer(fast_config(strategy="dann", params={"weight": -1.0}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_missing_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        select_device("cuda")


def test_unknown_device_lists_valid_ones():
    with pytest.raises(DeviceError, match="auto, cpu, cuda"):
        select_device("tpu")
    assert select_device("cpu").type == "cpu"


def test_thread_count_is_restored_after_a_run():
    before = torch.get_num_threads()
    list(Trainer(fast_config(threads=1)).run())
    assert torch.get_num_threads() == before


def test_freeze_depth_selects_trainable_blocks():
    model = build_model("lenet", "image", (1, 28, 28), 10)
    model.freeze(1)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("features.0.") for n in frozen)
    model.freeze(-1)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    model.freeze(0)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match="freeze_depth"):
        model.freeze(9)


def test_engine_never_imports_streamlit():
    import subprocess
    code = ("import sys, tlcore.api, tlcore.cli, tlcore.train, tlcore.metrics, tlcore.embed, tlcore.runs; "
            "assert 'streamlit' not in sys.modules, 'tlcore imported streamlit'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_engine_never_prints():
    import ast
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "tlcore"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
