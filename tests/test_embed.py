"""Feature extraction and 2-D projections."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from tlcore.config import RunConfig
from tlcore.embed import extract_features, project_pca, project_umap
from tlcore.train import Trainer


def test_pca_matches_a_plain_eigendecomposition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    got = project_pca(x)
    centred = x - x.mean(0)
    evals, evecs = np.linalg.eigh(np.cov(centred, rowvar=False))
    top = evecs[:, np.argsort(evals)[::-1][:2]]
    expected = centred @ top
    for j in range(2):  # components are defined up to sign
        assert np.allclose(np.abs(got[:, j]), np.abs(expected[:, j]), atol=1e-4)
    assert got[:, 0].var() >= got[:, 1].var()


def test_pca_is_reproducible_and_sign_fixed():
    x = np.random.default_rng(1).normal(size=(50, 4))
    assert np.array_equal(project_pca(x), project_pca(x.copy()))


def test_extract_features_gives_the_penultimate_layer():
    trainer = Trainer(RunConfig(source="digits", target="digits:invert", strategy="source_only", device="cpu"))
    x = trainer.pair.target.x_test[:37]
    feats = extract_features(trainer.model, x)
    assert feats.shape == (37, trainer.model.feature_dim) and feats.dtype == np.float32
    with torch.no_grad():
        trainer.model.eval()
        assert np.allclose(feats, trainer.model.features(x).numpy(), atol=1e-5)


def test_importing_the_engine_does_not_import_umap():
    code = "import sys, tlcore.embed, tlcore.api; assert 'umap' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_umap_separates_two_clusters_and_is_seeded():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (100, 10)), rng.normal(8, 1, (100, 10))]).astype(np.float32)
    a, b = project_umap(x, seed=3), project_umap(x, seed=3)
    assert a.shape == (200, 2) and np.allclose(a, b)
    gap = np.linalg.norm(a[:100].mean(0) - a[100:].mean(0))
    spread = max(a[:100].std(0).max(), a[100:].std(0).max())
    assert gap > 2 * spread


def test_numba_cache_lives_in_the_transfer_lab_home(tmp_path):
    """A second server start finds UMAP's compiled kernels on disk (issue 12): numba must be told
    where, before it is first imported."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRANSFER_LAB_HOME": str(tmp_path)}
    env.pop("NUMBA_CACHE_DIR", None)
    code = ("import tlcore.embed as e; folder = e.use_numba_cache(); import numba; "
            "print(folder); print(numba.config.CACHE_DIR)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=300).stdout.split()
    assert out == [str(tmp_path / "numba-cache")] * 2 and (tmp_path / "numba-cache").is_dir()
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")  # the user's own setting wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=300).stdout.split()
    assert out == [str(tmp_path / "mine")] * 2
