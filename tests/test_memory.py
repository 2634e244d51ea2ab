"""Rows per forward pass from a memory budget, and refusing a run whose estimated peak does not fit."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers import fast_config
from tlcore import memory
from tlcore.embed import extract_features
from tlcore.errors import ResourceError, TransferLabError
from tlcore.models import build_model
from tlcore.train import EVAL_BATCH_SIZE, Trainer


def test_rows_for_budget_is_the_budget_over_the_row_clamped_to_one_and_the_cap():
    assert memory.rows_for_budget(1000, 10) == 100
    assert memory.rows_for_budget(1000, 3) == 333
    assert memory.rows_for_budget(10 ** 9, 10) == memory.MAX_EVAL_ROWS == 1024
    assert memory.rows_for_budget(5, 10) == 1          # a row larger than the budget still runs, alone
    assert memory.rows_for_budget(1000, 10, cap=64) == 64


def test_per_row_bytes_of_a_small_mlp_by_hand():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    # float32 input 3 + Linear 5 + ReLU 5 + Linear 2 = 15 floats = 60 bytes
    assert memory.activation_bytes_per_row(model, (3,)) == 60


def test_per_row_bytes_of_a_small_cnn_by_hand_and_the_model_is_left_as_it_was():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 4))
    model.train()
    before = model[1].running_mean.clone(), int(model[1].num_batches_tracked)
    # input 1×8×8 = 64; conv 2×6×6 = 72; batch norm 72; pool 2×3×3 = 18; flatten 18; linear 4 → 248 floats
    assert memory.activation_bytes_per_row(model, (1, 8, 8)) == 248 * 4
    assert model.training
    assert torch.equal(model[1].running_mean, before[0]) and int(model[1].num_batches_tracked) == before[1]
    assert memory.eval_rows(model, (1, 8, 8), budget_bytes=248 * 4 * 10) == 10


def test_a_224_px_lenet_evaluates_far_fewer_rows_per_pass_than_digits():
    big = build_model("lenet", "image", (3, 224, 224), 4)
    small = build_model("lenet", "image", (3, 28, 28), 4)
    assert memory.eval_rows(small, (3, 28, 28)) == EVAL_BATCH_SIZE
    rows = memory.eval_rows(big, (3, 224, 224))
    assert 1 <= rows < 100
    assert rows * memory.activation_bytes_per_row(big, (3, 224, 224)) <= memory.EVAL_MEMORY_BUDGET


def test_extract_features_by_budget_matches_one_row_at_a_time():
    model = build_model("mlp", "vector", (2,), 2)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(extract_features(model, x), extract_features(model, x, batch_size=1), atol=1e-5)


def test_a_run_whose_estimate_exceeds_the_available_memory_is_refused_with_the_numbers():
    config = fast_config()
    trainer = Trainer(config, available_memory=10 ** 9)
    est = trainer.peak_estimate
    assert est.data_bytes > 0 and est.train_bytes > 0 and est.eval_bytes > 0
    with pytest.raises(ResourceError) as info:
        Trainer(config, available_memory=est.total - 1)
    message = str(info.value)
    assert isinstance(info.value, TransferLabError)
    assert "available" in message and "resize=" in message and "limit=" in message and "batch size" in message
    Trainer(config, available_memory=est.total)  # exactly enough is enough


def test_evaluation_in_budget_sized_chunks_gives_the_same_predictions():
    trainer = Trainer(fast_config())
    f_all, p_all = trainer.predict_split("target_test")
    trainer.batches.eval_rows = 7
    f_small, p_small = trainer.predict_split("target_test")
    assert torch.equal(p_all, p_small)
    torch.testing.assert_close(f_all, f_small)
