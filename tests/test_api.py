"""run_experiment's record keeping after training: checkpoints and the matched baseline.

Failures are real (a directory where the checkpoint file goes, a target folder that is
deleted while the run trains), not a mocked store."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlcore import events as ev
from tlcore.api import load_trained, run_experiment
from tlcore.data import folder as folder_module
from tlcore.errors import DatasetUnavailableError
from tlcore.paths import checkpoint_dir
from tlcore.runs import RunStore
from tlcore.train import resolved_config

from helpers import fast_config


def test_checkpoint_is_written_atomically_and_loads():
    store = RunStore()
    out = run_experiment(fast_config(), store=store)
    rec = store.get_run(out.run_id)
    assert rec.status == "done" and Path(rec.checkpoint_path) == checkpoint_dir() / f"{out.run_id}.pt"
    assert sorted(p.name for p in checkpoint_dir().iterdir()) == [f"{out.run_id}.pt"]  # no temporary left
    trainer, _ = load_trained(out.run_id, store)
    assert trainer.config.strategy == "source_only"


def test_failed_checkpoint_write_finishes_the_run_as_failed():
    store = RunStore()
    config = fast_config()
    run_id = store.create_run(resolved_config(config).to_dict(), status="queued")
    blocked = checkpoint_dir() / f"{run_id}.pt"
    blocked.mkdir(parents=True)  # the checkpoint cannot be renamed onto a directory
    with pytest.raises(OSError):
        run_experiment(config, store=store, run_id=run_id)
    rec = store.get_run(run_id)
    assert rec.status == "failed"
    assert "checkpoint" in rec.error and "IsADirectoryError" in rec.error
    assert rec.metrics["target_accuracy"] >= 0.0  # what the training measured is kept
    assert [p.name for p in checkpoint_dir().iterdir()] == [blocked.name]  # the temporary file is gone


def _write_domain(root: Path, per_class: int = 6) -> None:
    for label, name in enumerate(("a", "b")):
        for i in range(per_class):
            (root / name).mkdir(parents=True, exist_ok=True)
            pixels = np.full((8, 8, 3), 40 + 150 * label, dtype=np.uint8)
            pixels[:, : 1 + i] = 255 - 100 * label
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_a_baseline_that_fails_finishes_the_trained_run(tmp_path):
    folder_module.clear_cache()
    _write_domain(tmp_path / "src")
    _write_domain(tmp_path / "tgt")
    config = fast_config(source=f"folder:{tmp_path}/src:resize=16", target=f"folder:{tmp_path}/tgt:resize=16",
                         strategy="finetune", target_labels=1)

    def remove_target(run_id, event):  # the target folder goes away once the run has trained
        if isinstance(event, ev.ResultEvent):
            shutil.rmtree(tmp_path / "tgt")
            folder_module.clear_cache()

    store = RunStore()
    with pytest.raises(DatasetUnavailableError):
        run_experiment(config, store=store, on_event=remove_target)
    (run,) = store.list_runs()  # the baseline failed validation, so it never created a record
    assert run.config["strategy"] == "finetune"
    assert run.status == "failed"
    assert "target_only baseline" in run.error and "DatasetUnavailableError" in run.error
    assert Path(run.checkpoint_path).exists()
