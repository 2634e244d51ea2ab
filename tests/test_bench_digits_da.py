"""benchmarks/bench_digits_da.py end to end on tiny files written in the real formats (IDX, bz2, .mat); no network."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.test_torchvision_data import offline, write_mnist, write_svhn, write_usps  # noqa: F401 (fixture)
from tlcore.strategies import STRATEGIES

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_digits_da.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_digits_da", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_the_strategies_come_from_the_registry_and_apply_to_an_unlabelled_target(bench):
    names = bench.applicable_strategies()
    assert {"source_only", "dann", "mmd", "cdan", "mcc", "self_training", "adabn"} <= set(names)
    assert not {"target_only", "oracle", "finetune", "rkd"} & set(names)  # references, or need target labels
    assert [n for n in STRATEGIES if n in names] == names


def test_every_pair_runs_in_one_command_with_the_published_column(tmp_path, monkeypatch, capsys, offline, bench):
    data = tmp_path / "data"
    write_mnist(data)
    write_usps(data, monkeypatch)
    write_svhn(data, monkeypatch)
    out_json = tmp_path / "bench.json"
    code = bench.main(["--data-dir", str(data), "--epochs", "1", "--batch-size", "16", "--seeds", "0", "1",
                       "--strategies", "source_only", "dann", "--device", "cpu", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert offline.urls == []
    for title in ("MNIST → USPS", "USPS → MNIST", "SVHN → MNIST", "MNIST → MNIST-M"):
        assert f"### {title}: target test accuracy (%), 2 seed(s)" in out
    rows = [line for line in out.splitlines() if line.startswith("| source_only |") or line.startswith("| dann |")]
    assert len(rows) == 8  # two strategies in each of four pairs
    assert all(" ± " in row.split("|")[2] for row in rows), rows  # mean ± sd over the two seeds
    assert "| dann |" in out and "91.7 (TLlib, LeNet, 28 px)" in out and "95.2 (TLlib, LeNet, 28 px)" in out
    assert "73.85 (Ganin et al. JMLR 2016, Table 2)" in out and "76.66 (Ganin et al. JMLR 2016, Table 2, real MNIST-M)" in out
    assert "target images resized from 16×16 to 28×28" in out  # the recorded preprocessing, printed
    saved = json.loads(out_json.read_text())
    assert set(saved["pairs"]) == {"mnist-usps", "usps-mnist", "svhn-mnist", "mnist-mnistm"}
    row = saved["pairs"]["mnist-usps"][1]
    assert row["strategy"] == "dann" and len(row["target_accuracy"]) == 2 and all(0 <= a <= 100 for a in
                                                                                row["target_accuracy"])
    assert all(w > 0 for w in row["wall_s"]) and row["published"][0] == ["TLlib, LeNet, 28 px", "91.7"]


def test_missing_files_are_named_and_nothing_is_downloaded(tmp_path, monkeypatch, capsys, offline, bench):
    write_usps(tmp_path, monkeypatch)  # USPS only: every pair also needs MNIST or SVHN
    code = bench.main(["--data-dir", str(tmp_path), "--epochs", "1", "--strategies", "source_only"])
    err = capsys.readouterr().err
    assert code == 2 and offline.urls == []
    assert "MNIST → USPS: skipped, its files are not complete" in err and "train-images-idx3-ubyte is missing" in err
    assert "SVHN → MNIST: skipped" in err and "train_32x32.mat is missing" in err
    assert f"tlcore download mnist usps --data-dir {tmp_path}" in err
