"""Streamed image folders (``data_mode``) and the GPU batch-size search, on small trees written here.

A streamed run reads its batches through a DataLoader (with and without worker
processes) from images decoded when read; the loop draws the same rows per step
either way, so the checks below compare a streamed run with a resident run of
the same configuration, event for event.
"""
from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tlcore import events as ev
from tlcore.api import load_trained, run_experiment
from tlcore.config import RunConfig
from tlcore.data import load_domain, make_pair
from tlcore.data import folder as folder_module
from tlcore.data.lazy import LazyImages
from tlcore.device import BatchSizeFit, choose_batch_size, find_batch_size
from tlcore.errors import ConfigError, DatasetUnavailableError, DeviceError, SpecError
from tlcore.inspection import input_cloud, input_gap, inspect_trainer
from tlcore.runs import RunStore
from tlcore.train import Trainer

CLASSES = ("cat", "dog", "fish")


@pytest.fixture(autouse=True)
def _fresh_cache():
    folder_module.clear_cache()
    yield
    folder_module.clear_cache()


def write_tree(root: Path, per_class: int = 12, size=(22, 18), seed: int = 0) -> Path:
    """Noisy images whose mean colour depends on the class (learnable, not trivially)."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.array([60 + 60 * label, 120, 200 - 60 * label], dtype=np.float64)
            pixels = np.clip(base + rng.normal(0, 70, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"img{i}.png")
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_tree(tmp_path / "pets")


def config(root: Path, **changes) -> RunConfig:
    values = dict(source=f"folder:{root}:resize=16", target=f"folder:{root}:resize=16,rotate=40,invert",
                  strategy="dann", epochs=2, batch_size=8, seed=3, log_every=1, lr=3e-3)
    values.update(changes)
    return RunConfig(**values)


def history(trainer: Trainer) -> list[dict]:
    """Every event, without wall-clock fields."""
    out = []
    for event in trainer.run():
        d = ev.to_dict(event)
        for key in ("elapsed_s", "examples_per_s", "device", "threads"):
            d.pop(key, None)
        out.append(d)
    return out


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("strategy,labels", [("dann", 0), ("finetune", 2)])
def test_a_streamed_run_trains_on_the_batches_of_a_resident_run(tree, workers, strategy, labels):
    others = set(multiprocessing.active_children())  # e.g. the app's UMAP helper, started by other tests
    resident = Trainer(config(tree, strategy=strategy, target_labels=labels, data_mode="resident"))
    streamed = Trainer(config(tree, strategy=strategy, target_labels=labels, data_mode="stream",
                              loader_workers=workers))
    assert resident.data_mode == "resident" and isinstance(resident.pair.source.x_train, torch.Tensor)
    assert streamed.data_mode == "stream" and isinstance(streamed.pair.source.x_train, LazyImages)
    expected, got = history(resident), history(streamed)
    assert [e["kind"] for e in got].count("step") >= 3 and got[-1]["kind"] == "result"
    assert got == expected  # same rows per step, same pixels: the same losses and accuracies, exactly
    assert set(multiprocessing.active_children()) - others == set()  # the run's end shut its loader workers down


def test_stream_forces_the_dataloader_on_data_that_would_fit_too():
    base = RunConfig(source="moons", target="moons:rotate=30", strategy="importance_weighting", epochs=2,
                     batch_size=128, seed=1, log_every=3)
    streamed = Trainer(base.replace(data_mode="stream", loader_workers=0))
    assert streamed.data_mode == "stream" and "data_mode=stream" in streamed.data_note
    assert history(streamed) == history(Trainer(base))


def test_a_streamed_run_is_reproducible_and_the_seed_matters(tree):
    first = history(Trainer(config(tree, data_mode="stream", loader_workers=2)))
    again = history(Trainer(config(tree, data_mode="stream", loader_workers=2)))
    other = history(Trainer(config(tree, data_mode="stream", loader_workers=2, seed=4)))
    assert first == again
    assert first != other


def test_run_experiment_records_the_data_mode_it_used(tree, tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs.sqlite")
    monkeypatch.setenv("TRANSFER_LAB_MAX_RESIDENT_MB", "0.01")  # 36 images of 3×16×16 need 0.026 MB
    outcome = run_experiment(config(tree, strategy="source_only", loader_workers=0), store=store)
    assert outcome.status == "done" and outcome.metrics["data_mode"] == "stream"
    lines = outcome.metrics["preprocessing"]
    assert any(line.startswith("data: streamed (data_mode=auto: the source and target images exceed") for line in lines)
    assert any("streamed from disk (data_mode=auto" in line for line in lines)
    events = store.events(outcome.run_id)
    assert any(e["kind"] == "step" for e in events) and events[-1]["kind"] == "result"
    trainer, _ = load_trained(outcome.run_id, store=store)  # a stored streamed run reloads and evaluates
    assert trainer.data_mode == "stream"
    assert trainer.evaluate()[1] == pytest.approx(outcome.metrics["target_accuracy"])


def test_auto_streams_above_the_resident_limit_and_stays_resident_below(tree, monkeypatch):
    below = Trainer(config(tree))
    assert below.data_mode == "resident" and "fit under the resident limit" in below.data_note
    monkeypatch.setenv("TRANSFER_LAB_MAX_RESIDENT_MB", "0.01")
    above = Trainer(config(tree))
    assert above.data_mode == "stream" and isinstance(above.pair.target.x_test, LazyImages)
    assert "data_mode=auto" in above.data_note
    words = " ".join(above.pair.source.description)
    assert "streamed from disk (data_mode=auto" in words and "above the resident limit" in words


def test_resident_above_the_limit_is_the_clear_size_error(tree, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_MAX_RESIDENT_MB", "0.01")
    with pytest.raises(SpecError) as info:
        Trainer(config(tree, data_mode="resident"))
    message = str(info.value)
    assert "images of 3×16×16" in message and "TRANSFER_LAB_MAX_RESIDENT_MB" in message
    assert "resize=" in message and "limit=" in message and "data_mode='auto' or 'stream'" in message


def test_unknown_data_mode_is_refused():
    with pytest.raises(ConfigError, match="data_mode='disk' is not one of: auto, resident, stream"):
        RunConfig(data_mode="disk")


# --------------------------------------------------------------------------- evaluation, inspection
def test_streamed_evaluation_equals_resident_evaluation_for_the_same_model(tree):
    others = set(multiprocessing.active_children())
    easier = f"folder:{tree}:resize=16,blur=1.5"
    trained = Trainer(config(tree, target=easier, strategy="source_only", epochs=3, data_mode="resident"))
    history(trained)
    streamed = Trainer(config(tree, target=easier, strategy="source_only", epochs=3, data_mode="stream",
                              loader_workers=2))
    streamed.model.load_state_dict(trained.model.state_dict())
    s_res, t_res, _, preds_res = trained.evaluate()
    s_str, t_str, _, preds_str = streamed.evaluate()
    assert (s_str, t_str) == (s_res, t_res) and 0.0 < t_res < 1.0
    assert torch.equal(preds_str, preds_res)
    features_res, _ = trained.predict_split("target_test")
    features_str, _ = streamed.predict_split("target_test")
    assert torch.allclose(features_str, features_res, atol=1e-5)
    inspected_res, inspected_str = inspect_trainer(trained), inspect_trainer(streamed)
    assert inspected_str.target_accuracy == inspected_res.target_accuracy
    assert np.array_equal(inspected_str.confusion, inspected_res.confusion)
    assert inspected_str.gap.mmd2 == pytest.approx(inspected_res.gap.mmd2, abs=1e-5)
    assert set(multiprocessing.active_children()) - others == set()  # inspection released its workers


def test_input_gap_and_cloud_decode_the_same_subset_of_a_streamed_pair(tree):
    specs = (f"folder:{tree}:resize=12", f"folder:{tree}:resize=12,blur=1")
    resident, streamed = make_pair(*specs, seed=2), make_pair(*specs, seed=2, data_mode="stream")
    assert isinstance(streamed.source.x_train, LazyImages)
    a, b = input_gap(resident, seed=1, max_points=10, num_permutations=20), \
        input_gap(streamed, seed=1, max_points=10, num_permutations=20)
    assert (a.mmd2, a.p_value, a.pad) == (b.mmd2, b.p_value, b.pad) and a.n_source == 10
    ca, cb = input_cloud(resident, max_points=7, seed=1), input_cloud(streamed, max_points=7, seed=1)
    assert np.array_equal(ca.points, cb.points) and np.array_equal(ca.index, cb.index)


def test_importance_weighting_prepares_its_weights_from_a_streamed_source(tree):
    trainer = Trainer(config(tree, strategy="importance_weighting", epochs=1, data_mode="stream", loader_workers=2))
    events = history(trainer)
    weights = trainer.artifacts()["importance_weights"]
    assert len(weights) == len(trainer.pair.source.y_train)
    assert all(np.isfinite(weights)) and np.mean(weights) == pytest.approx(1.0, abs=1e-4)
    assert events[-1]["extras"]["domain_classifier_accuracy"] >= 0.5


# --------------------------------------------------------------------------- the lazy images and shifts
def test_lazy_images_decode_exactly_what_the_resident_loader_decodes(tree):
    spec = f"folder:{tree}:resize=12,rotate=30,invert,blur=1,scale=1.2,limit=5,resize=10"
    resident, streamed = load_domain(spec, seed=5), load_domain(spec, seed=5, data_mode="stream")
    x = streamed.x_train
    assert isinstance(x, LazyImages) and x.shape == resident.x_train.shape and x.dtype == torch.uint8
    assert torch.equal(streamed.y_train, resident.y_train)
    assert torch.equal(x.materialise(), resident.x_train)
    assert torch.equal(x[2], resident.x_train[2]) and torch.equal(x[-1], resident.x_train[-1])
    assert torch.equal(x[3:7], resident.x_train[3:7])
    mask = resident.y_train == 1
    assert torch.equal(x[mask], resident.x_train[mask])
    assert torch.equal(x.take(torch.tensor([4, 0]))[1], resident.x_train[0])
    assert "when each batch is read" in " ".join(streamed.description)


def test_harmonising_a_streamed_domain_resizes_each_image_when_read(tmp_path):
    small, large = write_tree(tmp_path / "small", seed=1), write_tree(tmp_path / "large", seed=2)
    specs = (f"folder:{small}:resize=10", f"folder:{large}:resize=14")
    resident, streamed = make_pair(*specs), make_pair(*specs, data_mode="stream")
    assert streamed.source.input_shape == (3, 14, 14)
    assert torch.equal(streamed.source.x_test.materialise(), resident.source.x_test)
    assert any("when each batch is read" in step for step in streamed.harmonisation)


@pytest.mark.parametrize("shift", ["noise=0.1", "texture=0.5", "bias=1"])
def test_whole_split_shifts_refuse_a_streamed_domain_and_name_the_fix(tree, shift):
    with pytest.raises(SpecError) as info:
        load_domain(f"folder:{tree}:resize=12,{shift}", data_mode="stream")
    message = str(info.value)
    assert f"the shift {shift} needs every image of a split in memory" in message
    assert "resize=PX" in message and "limit=N" in message and "data_mode" in message
    assert load_domain(f"folder:{tree}:resize=12,{shift}").x_train.dtype == torch.uint8  # resident: fine


def test_a_streamed_folder_skips_unreadable_files_when_listing_them(tree):
    (tree / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    good = (tree / "cat" / "img0.png").read_bytes()
    (tree / "cat" / "truncated.png").write_bytes(good[: len(good) // 2])
    streamed = load_domain(f"folder:{tree}:resize=8", data_mode="stream")
    resident = load_domain(f"folder:{tree}:resize=8")
    assert len(streamed.y_train) + len(streamed.y_test) == 36
    assert torch.equal(streamed.x_train.materialise(), resident.x_train)
    skipped = [step for step in streamed.description if step.startswith("2 unreadable image(s) skipped")]
    assert len(skipped) == 1 and "broken.jpg" in skipped[0] and "truncated.png" in skipped[0]


def test_a_file_that_breaks_after_listing_stops_with_its_path(tree):
    streamed = load_domain(f"folder:{tree}:resize=8", data_mode="stream")
    victim = Path(streamed.x_train.files[0])
    victim.write_bytes(b"gone")
    with pytest.raises(DatasetUnavailableError, match=f"{victim.name}: this image cannot be decoded"):
        streamed.x_train.materialise()


# --------------------------------------------------------------------------- the GPU batch size
def oom_above(limit: int, calls: list[int]):
    def step(size: int) -> None:
        calls.append(size)
        if size > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated: {size} > {limit})")
    return step


@pytest.mark.parametrize("requested,limit", [(256, 100), (256, 96), (64, 64), (100, 52), (10, 5), (512, 300)])
def test_the_batch_size_search_finds_the_largest_size_that_fits(requested, limit):
    """Exercises only the search, with a step that raises torch.OutOfMemoryError above a
    threshold. The GPU path itself (real forward and backward passes that run out of CUDA
    memory) is not measured here: CI has no GPU."""
    calls, cleared = [], []
    fit = find_batch_size(oom_above(limit, calls), requested, after_oom=lambda: cleared.append(1))
    assert fit.requested == requested and fit.chosen <= min(limit, requested)
    best_multiple = min(limit, requested) // 8 * 8
    assert fit.chosen >= (best_multiple if best_multiple >= 8 else min(limit, requested))
    assert calls[0] == requested and len(calls) <= 2 * requested.bit_length()
    assert [size for size, _ in fit.tried] == calls and len(cleared) == sum(not ok for _, ok in fit.tried)
    assert fit.reduced == (limit < requested)
    if fit.reduced:
        assert fit.describe().startswith(f"batch size reduced from {requested} to {fit.chosen} to fit GPU memory")


def test_the_search_lets_other_errors_through_and_says_when_nothing_fits():
    """Search logic only (CPU; no GPU is measured)."""
    def broken(size):
        raise ValueError("a bug, not memory")
    with pytest.raises(ValueError, match="a bug"):
        find_batch_size(broken, 64)
    with pytest.raises(DeviceError, match="even a batch of 2 examples does not fit"):
        find_batch_size(oom_above(1, []), 64, device="a tiny GPU")
    fit = find_batch_size(lambda size: (_ for _ in ()).throw(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED"))
                          if size > 20 else None, 32)
    assert fit.chosen == 16


def test_on_a_cpu_the_requested_batch_size_is_kept_without_trying(tree):
    calls = []
    fit = choose_batch_size(torch.device("cpu"), oom_above(0, calls), 256)
    assert fit == BatchSizeFit(256, 256, (), fit.device) and calls == []
    trainer = Trainer(config(tree, batch_size=16))
    assert trainer.batch_size_fit is None and trainer.config.batch_size == 16


def test_streamed_inputs_survive_pickling_for_spawned_workers(tree):
    """macOS and Windows start DataLoader workers by pickling the dataset: the lazy images and
    their per-image transforms (shifts, harmonisation) must round-trip."""
    import pickle

    streamed = load_domain(f"folder:{tree}:resize=12,rotate=30,invert,blur=1,resize=10", data_mode="stream")
    copy = pickle.loads(pickle.dumps(streamed.x_test))
    assert torch.equal(copy.materialise(), streamed.x_test.materialise())
