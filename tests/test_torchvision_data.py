"""torchvision datasets on tiny files written in their exact on-disk formats; no network.

Every file is written the way the real download leaves it (IDX, gzip, bz2,
MATLAB .mat, CIFAR pickles, STL-10 binaries) under torchvision's layout, and
read through torchvision's own dataset classes. Where torchvision verifies a
published MD5, the test sets the class's expected checksum to that of the tiny
file, so the real verification runs. ``urllib.request.urlopen`` is replaced by
a function that fails at once, as it does offline; the download tests serve the
files from a local server instead (more faults in tests/test_download.py).
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import pickle
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import torchvision.datasets as torchvision_datasets

from tests.localweb import LocalWeb
from tlcore.data import load_domain, make_pair
from tlcore.data import torchvision_data as tvd
from tlcore.data.torchvision_data import SHARED_OBJECT_CLASSES, dataset_status, download_dataset
from tlcore.download import DownloadProgress
from tlcore.errors import ClassMismatchError, DatasetUnavailableError

REAL_URLOPEN = urllib.request.urlopen

N_TRAIN, N_TEST = 30, 20  # 3 and 2 per class
OBJECTS_CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
OBJECTS_STL = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


# --------------------------------------------------------------------------- isolation
class OfflineCalls:
    def __init__(self):
        self.urls = []

    def __call__(self, request, *args, **kwargs):
        self.urls.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution (test: offline)")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may touch the network: every URL open fails at once, as offline."""
    calls = OfflineCalls()
    monkeypatch.setattr(urllib.request, "urlopen", calls)
    tvd.clear_cache()
    yield calls
    tvd.clear_cache()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def labels(n: int) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


def images(n: int, *shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


# --------------------------------------------------------------------------- writers (exact formats)
def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: 0, 0, type 0x08 (uint8), ndim; big-endian uint32 dims; the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist(root: Path, cls_name: str = "MNIST", gz: bool = False, monkeypatch=None) -> dict:
    """``root/<cls>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``."""
    raw = root / cls_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    data = {"train": (images(N_TRAIN, 28, 28, seed=1), labels(N_TRAIN)),
            "t10k": (images(N_TEST, 28, 28, seed=2), labels(N_TEST))}
    resources = []
    for prefix, (x, y) in data.items():
        for kind, array in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{prefix}-{kind}-ubyte"
            content = idx_bytes(array)
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(content))
                resources.append((f"{name}.gz", md5(raw / f"{name}.gz")))
            else:
                (raw / name).write_bytes(content)
    if gz:
        cls = getattr(torchvision_datasets, cls_name)
        order = [r[0] for r in cls.resources]
        monkeypatch.setattr(cls, "resources", sorted(resources, key=lambda r: order.index(r[0])))
    return data


def write_usps(root: Path, monkeypatch) -> dict:
    """``root/usps.bz2`` and ``usps.t.bz2``: libsvm lines ``label idx:value ...``, label 1..10, values in [-1, 1]."""
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    cls = torchvision_datasets.USPS
    for split, n, seed in (("train", N_TRAIN, 3), ("test", N_TEST, 4)):
        x = np.random.default_rng(seed).uniform(-1, 1, size=(n, 256)).astype(np.float32)
        y = labels(n)
        lines = [f"{int(label) + 1} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(row)) + "\n"
                 for row, label in zip(x, y)]
        url, filename, _ = cls.split_list[split]
        (root / filename).write_bytes(bz2.compress("".join(lines).encode()))
        monkeypatch.setitem(cls.split_list, split, [url, filename, md5(root / filename)])
        out[split] = (x, y)
    return out


def write_svhn(root: Path, monkeypatch) -> dict:
    """``root/{train,test}_32x32.mat``: X of shape (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0."""
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    out = {}
    cls = torchvision_datasets.SVHN
    for split, n, seed in (("train", N_TRAIN, 5), ("test", N_TEST, 6)):
        x = images(n, 32, 32, 3, seed=seed).transpose(1, 2, 3, 0).copy()  # (H, W, C, N)
        y = labels(n).astype(np.uint8)
        y_mat = np.where(y == 0, 10, y).reshape(-1, 1)
        url, filename, _ = cls.split_list[split]
        savemat(root / filename, {"X": x, "y": y_mat})
        monkeypatch.setitem(cls.split_list, split, [url, filename, md5(root / filename)])
        out[split] = (x, y)
    return out


def write_cifar10(root: Path, monkeypatch) -> dict:
    """``root/cifar-10-batches-py/``: pickled dicts with ``data`` (n, 3072) uint8 (R, G, B planes) and ``labels``."""
    cls = torchvision_datasets.CIFAR10
    folder = root / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    out, train_list = {"train": ([], [])}, []
    for i, (name, _) in enumerate(cls.train_list):
        x, y = images(10, 3 * 32 * 32, seed=10 + i), list(range(10))
        (folder / name).write_bytes(pickle.dumps({"batch_label": name, "data": x, "labels": y}))
        train_list.append([name, md5(folder / name)])
        out["train"][0].append(x)
        out["train"][1].extend(y)
    x, y = images(N_TEST, 3 * 32 * 32, seed=20), labels(N_TEST).tolist()
    (folder / "test_batch").write_bytes(pickle.dumps({"batch_label": "test", "data": x, "labels": y}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": OBJECTS_CIFAR, "num_vis": 3072}))
    monkeypatch.setattr(cls, "train_list", train_list)
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(cls, "meta", {"filename": "batches.meta", "key": "label_names",
                                      "md5": md5(folder / "batches.meta")})
    out["train"] = (np.concatenate(out["train"][0]), np.array(out["train"][1]))
    out["test"] = (x, np.array(y))
    return out


def write_stl10(root: Path, monkeypatch) -> dict:
    """``root/stl10_binary/``: ``*_X.bin`` uint8 images stored column-major (3, 96, 96), ``*_y.bin`` labels 1..10."""
    cls = torchvision_datasets.STL10
    folder = root / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, seed in (("train", 10, 30), ("test", N_TEST, 31)):
        x = images(n, 3, 96, 96, seed=seed)  # (N, C, H, W) as torchvision returns it
        y = labels(n)
        x.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # the file holds each channel column by column
        (y + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
        out[split] = (x, y)
    images(1, 3, 96, 96, seed=32).tofile(folder / "unlabeled_X.bin")
    (folder / "class_names.txt").write_text("\n".join(OBJECTS_STL) + "\n")
    monkeypatch.setattr(cls, "train_list", [[name, md5(folder / name)] for name, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[name, md5(folder / name)] for name, _ in cls.test_list])
    return out


# --------------------------------------------------------------------------- digits
@pytest.mark.parametrize("name, cls_name", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST"),
                                            ("kmnist", "KMNIST")])
def test_mnist_family_reads_raw_idx_files(tmp_path, name, cls_name):
    data = write_mnist(tmp_path, cls_name)
    domain = load_domain(name, data_dir=tmp_path)
    assert domain.x_train.dtype == torch.uint8 and domain.input_shape == (1, 28, 28)
    assert torch.equal(domain.x_train[:, 0], torch.from_numpy(data["train"][0]))
    assert torch.equal(domain.y_test, torch.from_numpy(data["t10k"][1]).long())
    assert len(domain.class_names) == 10
    if name == "mnist":
        assert domain.class_names == tuple(str(d) for d in range(10))
    else:
        assert domain.class_names == tuple(getattr(torchvision_datasets, cls_name).classes)
    assert f"torchvision.datasets.{cls_name}" in domain.description[0] and str(tmp_path) in domain.description[0]


def test_mnist_gz_files_are_verified_and_extracted_without_network(tmp_path, monkeypatch, offline):
    data = write_mnist(tmp_path, gz=True, monkeypatch=monkeypatch)
    assert {s.state for s in dataset_status("mnist", tmp_path)} == {"extract"}
    domain = load_domain("mnist", data_dir=tmp_path)
    assert torch.equal(domain.x_test[:, 0], torch.from_numpy(data["t10k"][0]))
    assert (tmp_path / "MNIST/raw/train-images-idx3-ubyte").is_file()
    assert offline.urls == []
    assert {s.state for s in dataset_status("mnist", tmp_path)} == {"ok"}


def test_usps_reads_the_bz2_libsvm_files(tmp_path, monkeypatch):
    data = write_usps(tmp_path, monkeypatch)
    domain = load_domain("usps", data_dir=tmp_path)
    assert domain.input_shape == (1, 16, 16) and domain.x_train.dtype == torch.uint8
    expected = ((data["train"][0].reshape(-1, 16, 16) + 1) / 2 * 255).astype(np.uint8)  # torchvision's mapping
    assert torch.equal(domain.x_train[:, 0], torch.from_numpy(expected))
    assert domain.y_train.tolist() == data["train"][1].tolist()


def test_svhn_reads_the_mat_files_and_maps_label_10_to_digit_0(tmp_path, monkeypatch):
    data = write_svhn(tmp_path, monkeypatch)
    domain = load_domain("svhn", data_dir=tmp_path)
    assert domain.input_shape == (3, 32, 32)
    x = data["train"][0]
    assert int(domain.x_train[4, 2, 5, 7]) == int(x[5, 7, 2, 4])  # (N, C, H, W) from (H, W, C, N)
    assert domain.y_train.tolist() == data["train"][1].tolist() and 0 in domain.y_train.tolist()


def test_mnistm_is_mnist_blended_with_photo_patches_and_fixed(tmp_path):
    write_mnist(tmp_path)
    mnist = load_domain("mnist", data_dir=tmp_path)
    first = load_domain("mnistm", seed=0, data_dir=tmp_path)
    tvd.clear_cache()
    again = load_domain("mnistm", seed=5, data_dir=tmp_path)
    assert first.input_shape == (3, 28, 28) and first.x_train.dtype == torch.uint8
    assert torch.equal(first.x_train, again.x_train), "MNIST-M is one fixed dataset, whatever the run seed"
    assert torch.equal(first.y_train, mnist.y_train)
    # out = |patch − digit|: where the digit is 255 and the patch p, out = 255 − p ≤ 255; colour varies by channel
    assert not torch.equal(first.x_train[:, 0], first.x_train[:, 1])
    assert first.x_train.float().std() > 20
    assert any("MNIST-M-style reconstruction" in step and "BSDS500" in step for step in first.description)


def test_digit_pairs_are_harmonised_and_the_steps_recorded(tmp_path, monkeypatch):
    write_mnist(tmp_path)
    write_usps(tmp_path, monkeypatch)
    write_svhn(tmp_path, monkeypatch)
    pair = make_pair("mnist", "usps", data_dir=tmp_path)
    assert pair.source.input_shape == pair.target.input_shape == (1, 28, 28)
    assert pair.target.x_train.dtype == torch.uint8
    assert any("target images resized from 16×16 to 28×28" in step for step in pair.harmonisation)
    pair = make_pair("svhn", "mnist", data_dir=tmp_path)
    assert pair.source.input_shape == pair.target.input_shape == (3, 32, 32)
    steps = " | ".join(pair.harmonisation)
    assert "target grayscale images repeated to 3 channels" in steps and "from 28×28 to 32×32" in steps


def test_shifts_and_options_compose_with_file_datasets(tmp_path):
    write_mnist(tmp_path)
    domain = load_domain("mnist:rotate=30,limit=2,resize=32", seed=1, data_dir=tmp_path)
    assert domain.name == "mnist:rotate=30,limit=2,resize=32"
    assert domain.input_shape == (1, 32, 32) and domain.x_train.dtype == torch.uint8
    assert domain.class_counts() == [2] * 10
    assert any("rotated by 30°" in step for step in domain.description)
    pair = make_pair("mnist", "mnist:invert", seed=0, data_dir=tmp_path)
    assert len(pair.source.y_train) + len(pair.target.y_train) == N_TRAIN, "disjoint halves of one training set"


# --------------------------------------------------------------------------- objects
def test_cifar10_keeps_the_nine_classes_shared_with_stl10(tmp_path, monkeypatch):
    data = write_cifar10(tmp_path, monkeypatch)
    domain = load_domain("cifar10", data_dir=tmp_path)
    assert domain.class_names == SHARED_OBJECT_CLASSES and domain.input_shape == (3, 32, 32)
    assert len(domain.y_train) == 45 and len(domain.y_test) == 18  # frog (label 6) dropped
    first = data["train"][0][0].reshape(3, 32, 32)  # airplane: R plane, then G, then B
    assert torch.equal(domain.x_train[0], torch.from_numpy(first))
    car = SHARED_OBJECT_CLASSES.index("car")
    assert domain.y_train[1] == car  # CIFAR label 1 "automobile" is "car"


def test_stl10_binary_keeps_the_shared_classes_at_32_or_96_pixels(tmp_path, monkeypatch):
    data = write_stl10(tmp_path, monkeypatch)
    small = load_domain("stl10", data_dir=tmp_path)
    assert small.class_names == SHARED_OBJECT_CLASSES and small.input_shape == (3, 32, 32)
    assert len(small.y_train) == 9 and len(small.y_test) == 18  # monkey (label 7) dropped
    assert any("downsampled from 96×96 to 32×32" in step for step in small.description)
    full = load_domain("stl10:resize=96", data_dir=tmp_path)
    assert full.input_shape == (3, 96, 96)
    assert torch.equal(full.x_train[0], torch.from_numpy(data["train"][0][0]))
    assert full.y_train[7].item() == SHARED_OBJECT_CLASSES.index("ship")  # STL label 8 after monkey


def test_cifar10_and_stl10_form_a_pair(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    write_stl10(tmp_path, monkeypatch)
    pair = make_pair("cifar10", "stl10", target_labels=1, data_dir=tmp_path)
    assert pair.class_names == SHARED_OBJECT_CLASSES
    assert pair.source.input_shape == pair.target.input_shape == (3, 32, 32)
    assert pair.harmonisation == ()
    with pytest.raises(ClassMismatchError, match="only in source"):
        write_mnist(tmp_path)
        make_pair("cifar10", "mnist", data_dir=tmp_path)


# --------------------------------------------------------------------------- missing, offline, corrupt
def test_missing_dataset_offline_names_the_files_and_the_directory(tmp_path, offline):
    with pytest.raises(DatasetUnavailableError) as info:
        load_domain("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert offline.urls, "a download was attempted (and failed at once)"
    assert "could not be downloaded" in message and "Temporary failure in name resolution" in message
    assert f"Put these files under {tmp_path} " in message
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        assert f"MNIST/raw/{name}.gz  from https://" in message
    assert "Traceback" not in message and "tlcore download mnist" in message


@pytest.mark.parametrize("name, files", [
    ("usps", ["usps.bz2", "usps.t.bz2"]), ("svhn", ["train_32x32.mat", "test_32x32.mat"]),
    ("cifar10", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/batches.meta"]),
    ("stl10", ["stl10_binary/train_X.bin", "stl10_binary/unlabeled_X.bin"]),
])
def test_every_dataset_names_its_files_when_missing_offline(tmp_path, name, files):
    with pytest.raises(DatasetUnavailableError) as info:
        load_domain(name, data_dir=tmp_path)
    for file in files:
        assert file in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_truncated_idx_file_is_named(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetUnavailableError, match="train-images-idx3-ubyte is 1000 bytes .* truncated"):
        load_domain("mnist", data_dir=tmp_path)


def test_half_downloaded_gz_fails_its_checksum_and_is_named(tmp_path, monkeypatch, offline):
    write_mnist(tmp_path, gz=True, monkeypatch=monkeypatch)
    path = tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DatasetUnavailableError) as info:
        load_domain("mnist", data_dir=tmp_path)
    assert "t10k-labels-idx1-ubyte.gz is present but its MD5 checksum" in str(info.value)
    assert offline.urls == [] and path.is_file(), "nothing downloaded, nothing deleted"


@pytest.mark.parametrize("writer, name, file", [
    (write_usps, "usps", "usps.t.bz2"), (write_svhn, "svhn", "train_32x32.mat"),
    (write_cifar10, "cifar10", "cifar-10-batches-py/data_batch_3"),
    (write_stl10, "stl10", "stl10_binary/test_y.bin"),
])
def test_truncated_archives_and_pickles_are_named(tmp_path, monkeypatch, writer, name, file):
    writer(tmp_path, monkeypatch)
    path = tmp_path / file
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DatasetUnavailableError, match="corrupt or incomplete") as info:
        load_domain(name, data_dir=tmp_path)
    assert str(path) in str(info.value) and "MD5" in str(info.value)


def test_the_real_checksums_reject_a_stand_in_file(tmp_path):
    for name in ("usps.bz2", "usps.t.bz2"):
        (tmp_path / name).write_bytes(bz2.compress(b"1 1:0.5\n"))
    statuses = {s.path.name: s for s in dataset_status("usps", tmp_path)}
    assert statuses["usps.bz2"].state == "unverified"
    assert "ec16c51db3855ca6c91edd34d0e9b197" in statuses["usps.bz2"].detail
    with pytest.raises(DatasetUnavailableError, match="content was checked too: it could not be read"):
        load_domain("usps", data_dir=tmp_path)
    (tmp_path / "usps.t.bz2").unlink()
    with pytest.raises(DatasetUnavailableError, match="corrupt or incomplete"):  # never overwritten by a download
        load_domain("usps", data_dir=tmp_path)


# --------------------------------------------------------------------------- downloading (served locally)
def test_download_goes_through_torchvision_with_progress_and_checksums(tmp_path, monkeypatch):
    served_root = tmp_path / "server"
    write_usps(served_root, monkeypatch)  # also sets torchvision's expected MD5s to these files
    files = {filename: (served_root / filename).read_bytes()
             for _, filename, _ in torchvision_datasets.USPS.split_list.values()}
    monkeypatch.setattr(urllib.request, "urlopen", REAL_URLOPEN)  # the network is the local server
    reports: list[DownloadProgress] = []
    data_dir = tmp_path / "data"
    with LocalWeb(files).as_proxy(monkeypatch) as web:
        statuses = download_dataset("usps", data_dir, progress=reports.append)
    assert [s.state for s in statuses] == ["ok", "ok"]
    assert (data_dir / "usps.bz2").read_bytes() == files["usps.bz2"]
    assert "http://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/usps.t.bz2" in web.requests
    finished = [r for r in reports if r.finished]
    assert sorted(r.filename for r in finished) == ["usps.bz2", "usps.t.bz2"]
    assert all(r.done_bytes == r.total_bytes and r.fraction == 1.0 for r in finished)
    assert sorted(p.name for p in data_dir.iterdir()) == ["usps.bz2", "usps.t.bz2"]


# --------------------------------------------------------------------------- the command line
def test_cli_runs_mnist_to_usps_offline_and_records_the_preprocessing(tmp_path, monkeypatch, capsys, offline):
    from tlcore.cli import main
    from tlcore.runs import RunStore

    data_dir = tmp_path / "data"
    write_mnist(data_dir)
    write_usps(data_dir, monkeypatch)
    store = tmp_path / "runs.sqlite"
    code = main(["run", "--source", "mnist", "--target", "usps", "--data-dir", str(data_dir), "--epochs", "1",
                 "--batch-size", "16", "--device", "cpu", "--store", str(store), "--quiet", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads(out)
    record = RunStore(store).get_run(summary["run_id"])
    assert record.config["data_dir"] == str(data_dir)
    assert any("resized from 16×16 to 28×28" in line for line in record.metrics["preprocessing"])
    assert offline.urls == []

    code = main(["gap", "--source", "mnist", "--target", "usps", "--data-dir", str(data_dir), "--permutations", "20"])
    assert code == 0
    assert "target images resized from 16×16 to 28×28" in capsys.readouterr().out


def test_cli_reports_a_missing_dataset_in_one_clear_message(tmp_path, capsys):
    from tlcore.cli import main

    code = main(["run", "--source", "mnist", "--target", "usps", "--data-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: dataset 'mnist'") and "Traceback" not in err


def test_cli_download_offline_is_one_clear_error(tmp_path, capsys):
    from tlcore.cli import main

    assert main(["download", "usps", "--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset 'usps'") and "usps.t.bz2" in err


# --------------------------------------------------------------------------- checksums at load time
def recompress(path: Path, keep: float = 1.0) -> None:
    """Rewrite a bz2 file with the same content at another block size (other bytes, other MD5);
    ``keep`` < 1 then cuts the new file short."""
    data = bz2.compress(bz2.decompress(path.read_bytes()), compresslevel=1)
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_recompressed_usps_copy_loads_with_a_warning_that_the_run_records(tmp_path, monkeypatch, capsys):
    from tlcore.cli import main
    from tlcore.runs import RunStore

    data_dir = tmp_path / "data"
    written = write_usps(data_dir, monkeypatch)  # torchvision's MD5s now name these exact bytes
    write_mnist(data_dir)
    monkeypatch.setitem(tvd.EXPECTED_COUNTS, "usps", (N_TRAIN, N_TEST, (1, 16, 16)))  # the tiny files' sizes
    recompress(data_dir / "usps.bz2")
    statuses = {s.path.name: s.state for s in dataset_status("usps", data_dir)}
    assert statuses == {"usps.bz2": "unverified", "usps.t.bz2": "ok"}

    domain = load_domain("usps", data_dir=data_dir)
    assert len(domain.y_train) == N_TRAIN and torch.equal(domain.y_train, torch.as_tensor(written["train"][1],
                                                                                          dtype=torch.int64))
    assert len(domain.warnings) == 1 and domain.warnings[0].startswith("usps.bz2: its MD5 checksum differs")

    store = tmp_path / "runs.sqlite"
    code = main(["run", "--source", "mnist", "--target", "usps", "--data-dir", str(data_dir), "--epochs", "1",
                 "--batch-size", "16", "--device", "cpu", "--store", str(store), "--quiet", "--json",
                 "--no-baseline"])
    out = capsys.readouterr().out
    assert code == 0, out
    record = RunStore(store).get_run(json.loads(out)["run_id"])
    assert record.metrics["data_warnings"] == [f"target: {domain.warnings[0]}"]
    assert "data_warnings" not in record.config

    assert main(["download", "usps", "--data-dir", str(data_dir), "--quiet"]) == 0
    assert "usps: 1 file(s) verified" in capsys.readouterr().out  # the other one: checksum differs, content checked


@pytest.mark.parametrize("keep, counts, words", [
    (0.5, (N_TRAIN, N_TEST, (1, 16, 16)), "could not be read (EOFError"),  # truncated: does not decode
    (1.0, None, "its train split holds 30 images and 30 labels, not the published 7291"),  # decodes, wrong size
])
def test_a_usps_copy_that_is_truncated_or_the_wrong_size_is_still_refused(tmp_path, monkeypatch, keep, counts,
                                                                          words):
    write_usps(tmp_path, monkeypatch)
    if counts:
        monkeypatch.setitem(tvd.EXPECTED_COUNTS, "usps", counts)
    recompress(tmp_path / "usps.t.bz2", keep)
    with pytest.raises(DatasetUnavailableError, match="corrupt or incomplete") as info:
        load_domain("usps", data_dir=tmp_path)
    message = str(info.value)
    assert "usps.t.bz2 is present but its MD5 checksum" in message and words in message
    assert (tmp_path / "usps.t.bz2").is_file(), "nothing deleted"


def test_a_resaved_svhn_copy_loads_with_a_warning_despite_torchvisions_own_check(tmp_path, monkeypatch):
    from scipy.io import loadmat, savemat

    written = write_svhn(tmp_path, monkeypatch)
    monkeypatch.setitem(tvd.EXPECTED_COUNTS, "svhn", (N_TRAIN, N_TEST, (3, 32, 32)))
    path = tmp_path / "test_32x32.mat"
    content = loadmat(path)
    savemat(path, {"X": content["X"], "y": content["y"]}, do_compression=True)  # same arrays, other bytes
    assert dataset_status("svhn", tmp_path)[1].state == "unverified"
    domain = load_domain("svhn", data_dir=tmp_path)
    assert torch.equal(domain.y_test, torch.as_tensor(written["test"][1], dtype=torch.int64))
    assert [w.split(":")[0] for w in domain.warnings] == ["test_32x32.mat"]
