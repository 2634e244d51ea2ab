"""Shared test setup: one intra-op thread (fast and deterministic for small
models on 2 cores) and a throw-away run store per test session."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own Transfer Lab home, so no test touches a user's runs."""
    monkeypatch.setenv("TRANSFER_LAB_HOME", str(tmp_path / "tlhome"))
    yield
