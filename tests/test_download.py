"""Downloads against a local server that misbehaves: cut short, stalled, stopped (tlcore.download,
and torchvision's datasets through it).

The server is real (tests/localweb.py): bytes cross a socket, and torchvision's own download code
runs; the local server is also the proxy for its mirrors, which answers whatever DNS says.
"""
from __future__ import annotations

import socket
import threading

import pytest

from tests.localweb import LocalWeb
from tests.test_torchvision_data import write_mnist, write_usps
from tlcore import download
from tlcore.data import load_domain
from tlcore.data import torchvision_data as tvd
from tlcore.download import fetch_url
from tlcore.errors import (ChecksumMismatch, DatasetUnavailableError, DownloadIncomplete, DownloadStopped,
                           DownloadTimeout)

MiB = 1024 * 1024
PAYLOAD = bytes(range(256)) * (4 * MiB // 256)  # 4 MiB


@pytest.fixture(autouse=True)
def _fresh_datasets():
    tvd.clear_cache()
    yield
    tvd.clear_cache()


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def in_thread(function, *args, **kwargs):
    """Run ``function`` in a daemon thread; the returned dict gets "result" or "error"."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    outcome["thread"] = threading.Thread(target=run, daemon=True)
    outcome["thread"].start()
    return outcome


# --------------------------------------------------------------------------- fetch_url
def test_a_connection_cut_short_leaves_no_file_under_any_name(tmp_path):
    with LocalWeb({"train-images-idx3-ubyte.gz": PAYLOAD}, truncate_at=MiB) as web:
        destination = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
        with pytest.raises(DownloadIncomplete, match=f"announced {4 * MiB} bytes but the connection ended after "
                                                     f"{MiB}"):
            fetch_url(f"{web.url}/train-images-idx3-ubyte.gz", destination)
        assert files_under(tmp_path) == [], "neither the final name nor the .part file is left"
        web.truncate_at = None
        fetch_url(f"{web.url}/train-images-idx3-ubyte.gz", destination)  # a later attempt just works
        assert destination.read_bytes() == PAYLOAD and files_under(tmp_path) == ["MNIST/raw/train-images-idx3-ubyte.gz"]


def test_a_checksum_mismatch_keeps_nothing(tmp_path):
    with LocalWeb({"a.bin": PAYLOAD}) as web:
        with pytest.raises(ChecksumMismatch, match="differs from the expected 0123"):
            fetch_url(f"{web.url}/a.bin", tmp_path / "a.bin", md5="0123" + "0" * 28)
    assert files_under(tmp_path) == []


def test_a_stalled_server_times_out_with_a_clear_message(tmp_path):
    with LocalWeb({"a.bin": PAYLOAD}, stall_after=MiB) as web:
        with pytest.raises(DownloadTimeout, match=r"a\.bin: no data for 0\.5 s after \d+ bytes \(the server stalled\)"):
            fetch_url(f"{web.url}/a.bin", tmp_path / "a.bin", timeout=0.5)
    assert files_under(tmp_path) == []


def test_stop_ends_a_download_while_the_server_sends_nothing(tmp_path):
    stop = threading.Event()
    reports = []
    with LocalWeb({"a.bin": PAYLOAD}, stall_after=MiB) as web:
        outcome = in_thread(fetch_url, f"{web.url}/a.bin", tmp_path / "a.bin", timeout=600, stop=stop,
                            progress=reports.append)
        assert web.stalled.wait(30), "the server never reached its stall"
        stop.set()  # what the Stop button does; no byte arrives after this, so no progress report runs
        outcome["thread"].join(30)
        assert not outcome["thread"].is_alive(), "Stop did not end a download stalled on a silent connection"
    assert isinstance(outcome.get("error"), DownloadStopped), outcome
    assert 0 < reports[-1].done_bytes <= MiB and files_under(tmp_path) == []


# --------------------------------------------------------------------------- torchvision's datasets
def test_an_interrupted_dataset_download_leaves_nothing_and_the_next_attempt_completes(tmp_path, monkeypatch):
    served = tmp_path / "server"
    write_usps(served, monkeypatch)  # sets torchvision's expected MD5s to these files
    files = {name: (served / name).read_bytes() for name in ("usps.bz2", "usps.t.bz2")}
    data = tmp_path / "data"
    with LocalWeb(files, truncate_at=len(files["usps.bz2"]) // 3).as_proxy(monkeypatch) as web:
        with pytest.raises(DatasetUnavailableError) as info:
            tvd.download_dataset("usps", data)
        message = str(info.value)
        assert "could not be downloaded" in message and "but the connection ended after" in message
        assert "corrupt" not in message and "Delete them" not in message
        assert files_under(data) == [], "no half file under the final name, no .part"
        assert any(r.startswith("CONNECT www.csie.ntu.edu.tw") for r in web.requests)  # https refused at once
        assert any(r.startswith("http://www.csie.ntu.edu.tw/") for r in web.requests)  # then torchvision's http form

        web.truncate_at = None
        statuses = tvd.download_dataset("usps", data)
    assert [s.state for s in statuses] == ["ok", "ok"] and files_under(data) == ["usps.bz2", "usps.t.bz2"]


def test_a_corrupt_reply_is_never_kept_under_the_final_name(tmp_path, monkeypatch):
    write_usps(tmp_path / "server", monkeypatch)  # the expected MD5s are those of these files
    garbage = b"<html>captive portal</html>"
    with LocalWeb({"usps.bz2": garbage, "usps.t.bz2": garbage}).as_proxy(monkeypatch):
        with pytest.raises(DatasetUnavailableError, match="usps.bz2: MD5 .* differs from the expected"):
            load_domain("usps", data_dir=tmp_path / "data")
    assert files_under(tmp_path / "data") == [], "a file that fails its checksum never takes its name"


def test_a_stalled_dataset_download_blocks_no_other_load_and_stops_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_S", 600.0)  # only Stop can end it
    write_usps(tmp_path / "server", monkeypatch)
    files = {name: (tmp_path / "server" / name).read_bytes() for name in ("usps.bz2", "usps.t.bz2")}
    here = tmp_path / "here"
    write_mnist(here)  # another dataset, complete on disk
    stop = threading.Event()
    with LocalWeb(files, stall_after=1000).as_proxy(monkeypatch) as web:
        stalled = in_thread(tvd.download_dataset, "usps", tmp_path / "data", stop=stop)
        assert web.stalled.wait(30), "the download never reached the stall"
        other = in_thread(load_domain, "mnist", data_dir=here)
        other["thread"].join(60)
        assert not other["thread"].is_alive(), "loading another dataset waited for the stalled download"
        assert "error" not in other and other["result"].input_shape == (1, 28, 28)

        stop.set()
        stalled["thread"].join(30)
        assert not stalled["thread"].is_alive(), "Stop did not end the stalled download"
    assert isinstance(stalled.get("error"), DownloadStopped), stalled
    assert files_under(tmp_path / "data") == []


def test_a_stalled_dataset_download_times_out_as_a_clear_dataset_error(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_S", 0.5)
    write_usps(tmp_path / "server", monkeypatch)
    files = {name: (tmp_path / "server" / name).read_bytes() for name in ("usps.bz2", "usps.t.bz2")}
    with LocalWeb(files, stall_after=1000).as_proxy(monkeypatch):
        with pytest.raises(DatasetUnavailableError) as info:
            load_domain("usps", data_dir=tmp_path / "data")
    message = str(info.value)
    assert "could not be downloaded" in message and "no data for 0.5 s" in message and "server stalled" in message
    assert "usps.bz2  from https://" in message and files_under(tmp_path / "data") == []


# --------------------------------------------------------------------------- corrupt files, planned files
def test_remove_corrupt_files_deletes_exactly_the_corrupt_ones(tmp_path):
    write_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    truncated = raw / "t10k-images-idx3-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    (tmp_path / "notes.txt").write_text("mine")
    assert tvd.planned_downloads("mnist", tmp_path) == 0
    assert tvd.remove_corrupt_files("mnist", tmp_path) == [truncated.resolve()]
    assert sorted(p.name for p in raw.iterdir()) == ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte",
                                                     "train-labels-idx1-ubyte"]
    assert (tmp_path / "notes.txt").is_file()
    states = {s.path.name: s.state for s in tvd.dataset_status("mnist", tmp_path)}
    assert states["t10k-images-idx3-ubyte"] == "missing" and list(states.values()).count("ok") == 3
    assert tvd.planned_downloads("mnist", tmp_path) == 1  # its .gz archive
    assert tvd.remove_corrupt_files("mnist", tmp_path) == []


def test_a_corrupt_file_outside_the_data_directory_is_not_deleted(tmp_path):
    write_mnist(tmp_path / "elsewhere")
    outside = tmp_path / "elsewhere" / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    outside.write_bytes(outside.read_bytes()[:5])
    data = tmp_path / "data"
    (data / "MNIST" / "raw").mkdir(parents=True)
    (data / "MNIST" / "raw" / "train-labels-idx1-ubyte").symlink_to(outside)
    with pytest.raises(DatasetUnavailableError, match="outside the data directory"):
        tvd.remove_corrupt_files("mnist", data)
    assert outside.is_file()


def test_a_server_that_never_answers_times_out_with_a_clear_message(tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/a.bin"
        with pytest.raises(DownloadTimeout, match=r"no answer within 0\.5 s \(the server stalled or cannot be reached\)"):
            fetch_url(url, tmp_path / "a.bin", timeout=0.5)
    assert files_under(tmp_path) == []


def test_stop_ends_a_download_whose_server_never_answers(tmp_path):
    stop = threading.Event()
    with socket.socket() as silent:  # takes the connection and the request, and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        outcome = in_thread(fetch_url, f"http://127.0.0.1:{silent.getsockname()[1]}/a.bin", tmp_path / "a.bin",
                            timeout=600, stop=stop)
        connection, _ = silent.accept()
        with connection:
            assert connection.recv(4096).startswith(b"GET /a.bin")  # the request arrived; now only waiting
            stop.set()
            outcome["thread"].join(30)
            assert not outcome["thread"].is_alive(), "Stop did not end a download waiting for the server's answer"
    assert isinstance(outcome.get("error"), DownloadStopped), outcome
    assert files_under(tmp_path) == []
