"""The Data page's data sources under AppTest: the data directory, torchvision file status and
downloads, a folder on the server, an uploaded zip (pages/_sources.py).

Files are real: image folders written with PIL, MNIST IDX files written byte by byte, zips built
in memory. Downloads really cross a socket: a local server is the proxy for every mirror
(tests/localweb.py), refusing, serving slowly or serving the files, whatever DNS says.
"""
from __future__ import annotations

import io
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from pages import _keys as K
from pages import _sources as sources
from tests.localweb import LocalWeb
from tests.test_torchvision_data import write_mnist as write_mnist_archives
from tlcore.data import folder as folder_module
from tlcore.data import torchvision_data as tvd
from tlcore.runs import RunStore
from tlcore.worker import get_worker

CLASSES = ("cat", "dog", "fish")


@pytest.fixture(autouse=True)
def _quiet_app(monkeypatch):
    """No warm-ups; fresh engine caches; stop whatever a test started."""
    monkeypatch.setenv("TRANSFER_LAB_WARMUP", "0")
    tvd.clear_cache()
    folder_module.clear_cache()
    yield
    worker = get_worker()
    for job in worker.active_jobs():
        worker.stop(job.job_id)
    for job in worker.active_jobs():
        worker.wait(job.job_id, 60)
    tvd.clear_cache()
    folder_module.clear_cache()


from tests.test_app_pages import assert_clean, open_page  # noqa: E402  (the same page harness)


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def png_bytes(colour: tuple[int, int, int], size=(20, 16)) -> bytes:
    buffer = io.BytesIO()
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
    pixels[size[1] // 2:] //= 2
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_domain(root: Path, classes=CLASSES, per_class=6) -> Path:
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"img{i}.png").write_bytes(png_bytes((80 * label + 10, 30 * i, 200 - 60 * label)))
    return root


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def idx_bytes(array: np.ndarray) -> bytes:
    """MNIST's IDX format: 0, 0, type 0x08 (uint8), ndim, big-endian uint32 dims, the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


MNIST_FILES = {"train-images-idx3-ubyte": (40, 28, 28), "train-labels-idx1-ubyte": (40,),
               "t10k-images-idx3-ubyte": (20, 28, 28), "t10k-labels-idx1-ubyte": (20,)}


def write_mnist_file(root: Path, name: str) -> Path:
    shape = MNIST_FILES[name]
    rng = np.random.default_rng(len(name))
    array = (np.arange(shape[0]) % 10).astype(np.uint8) if len(shape) == 1 else \
        rng.integers(0, 256, size=shape, dtype=np.uint8)
    path = root / "MNIST" / "raw" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(idx_bytes(array))
    return path


# --- a folder on the server -------------------------------------------------------------------------
def test_a_picked_folder_is_previewed_becomes_a_dataset_and_its_pair_loads(tmp_path):
    root = write_domain(tmp_path / "pets")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "broken.png").write_bytes(b"this is not a PNG file")
    at = open_page("pages/data.py")
    at.text_input(key=K.FOLDER_PATH).input(str(root)).run()
    assert_clean(at)
    markdown = texts(at.markdown)
    assert "is **one domain**: 3 classes, 19 images" in markdown and f"`folder:{root}`" in markdown
    assert "1 file(s) without an image extension are ignored" in texts(at.caption)
    warning = texts(at.warning)
    assert "1 image file(s) cannot be read as images" in warning and "dog/broken.png" in warning
    counts = at.dataframe[0].value
    assert list(counts.index) == list(CLASSES) and counts["pets"].tolist() == [6, 7, 6]

    spec = f"folder:{root}"
    at.button(key=K.folder_use("source", spec)).click().run()
    at.button(key=K.folder_use("target", spec)).click().run()
    assert_clean(at)
    assert f"{spec} (your images)" in at.selectbox(key=K.dataset("source")).options  # options as labelled
    assert at.selectbox(key=K.dataset("source")).value == spec == at.selectbox(key=K.dataset("target")).value
    # a leading resize= is read while loading: the spec puts it first whatever the controls' order
    at.checkbox(key=K.shift("target", "invert")).check()
    at.slider(key=K.shift("target", "rotate")).set_value(0.0)
    at.number_input(key=K.shift("target", "resize")).set_value(24).run()
    assert_clean(at)
    assert [c.value for c in at.code] == [spec, f"{spec}:resize=24,invert"]
    assert len(at.get("plotly_chart")) == 4  # two image grids, class balance, PCA of the raw inputs
    preprocessing = texts(at.markdown)
    assert "unreadable image(s) skipped: dog/broken.png" in preprocessing
    assert "1 non-image file(s) ignored" in preprocessing


def test_a_root_of_several_domains_offers_each_and_reports_a_class_mismatch(tmp_path):
    office = tmp_path / "office"
    write_domain(office / "amazon")
    write_domain(office / "webcam", classes=("cat", "dog", "bird"))
    at = open_page("pages/data.py")
    at.text_input(key=K.FOLDER_PATH).input(str(office) + "/").run()
    assert_clean(at)
    assert "holds **2 domains** (amazon, webcam)" in texts(at.markdown)
    warning = texts(at.warning)
    assert "do not share one class set" in warning
    assert "**amazon** lacks bird" in warning and "**webcam** lacks fish" in warning
    at.button(key=K.FOLDER_ADD).click().run()
    assert_clean(at)
    options = at.selectbox(key=K.dataset("target")).options
    assert f"folder:{office}/amazon (your images)" in options and f"folder:{office}/webcam (your images)" in options
    assert "Choose them as Source or Target above" in texts(at.success)

    at.selectbox(key=K.dataset("source")).set_value(f"folder:{office}/amazon")
    at.selectbox(key=K.dataset("target")).set_value(f"folder:{office}/webcam").run()
    assert_clean(at)
    assert "cannot be paired" in at.error[0].value and "only in source: fish" in at.error[0].value


def test_a_folder_that_cannot_be_used_is_explained(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes(png_bytes((1, 2, 3)))
    at = open_page("pages/data.py")
    at.text_input(key=K.FOLDER_PATH).input(str(tmp_path / "nowhere")).run()
    assert_clean(at)
    assert "is not a directory" in texts(at.warning)
    at.text_input(key=K.FOLDER_PATH).input(str(flat)).run()
    assert "holds images but no class folders" in texts(at.warning)
    at.text_input(key=K.FOLDER_PATH).input("/data/a:b").run()
    assert "contains ':'" in texts(at.warning)
    assert not at.error and len(at.get("plotly_chart")) == 4  # the default pair still shows


# --- an uploaded zip ----------------------------------------------------------------------------------
def test_the_upload_handler_unpacks_images_and_refuses_bad_archives(tmp_path):
    data = tmp_path / "data"
    good = zip_bytes({"office/amazon/cat/a.png": png_bytes((200, 0, 0)), "office/amazon/dog/b.png": png_bytes((0, 200, 0)),
                      "office/webcam/cat/c.png": png_bytes((0, 0, 200)), "office/webcam/dog/d.png": png_bytes((9, 9, 9)),
                      "office/readme.txt": b"notes"})
    result = sources.import_zip(io.BytesIO(good), "office.zip", str(data))
    assert result.error is None and result.archive.images == 4 and result.archive.skipped == 1
    assert result.archive.root == data / "folders" / "office" and result.archive.domains == ("amazon", "webcam")
    assert result.archive.specs == ("folder:office/office/amazon", "folder:office/office/webcam")
    report = "\n".join(sources.zip_report(result))
    assert "Unpacked **4 image(s)**" in report and "Skipped 1 file(s)" in report and "office/readme.txt" in report
    assert "2 domains: amazon, webcam" in report

    slip = zip_bytes({"cat/a.png": png_bytes((1, 1, 1)), "../evil.png": png_bytes((2, 2, 2)),
                      "cat/notes.txt": b"not an image"})
    refused = sources.import_zip(io.BytesIO(slip), "slip.zip", str(data))
    assert refused.archive is None and "zip-slip" in refused.error and "'../evil.png'" in refused.error
    assert "was refused; nothing was written" in sources.zip_report(refused)[0]
    assert not list(tmp_path.rglob("evil.png"))
    assert sorted(p.name for p in (data / "folders").iterdir()) == ["office"]  # no staging folder left

    not_zip = sources.import_zip(io.BytesIO(b"plain text, not a zip"), "notes.zip", str(data))
    assert "not a readable zip archive" in not_zip.error
    no_images = sources.import_zip(io.BytesIO(zip_bytes({"a.txt": b"x", "b.csv": b"y"})), "text.zip", str(data))
    assert "holds no image files" in no_images.error


def test_uploading_a_zip_in_the_page_offers_its_folder_and_previews_it(tmp_path):
    data = tmp_path / "data"
    at = open_page("pages/data.py", {K.DATA_DIR: str(data)})
    members = {f"{name}/img{i}.png": png_bytes((60 * k, 20 * i, 90)) for k, name in enumerate(CLASSES) for i in range(5)}
    members["__MACOSX/._cat"] = b"metadata"
    at.file_uploader(key=K.UPLOAD).set_value(("my pets.zip", zip_bytes(members), "application/zip")).run()
    assert_clean(at)
    success = texts(at.success)
    assert "Unpacked **15 image(s)**" in success and "`folder:my_pets`" in success
    assert "folder:my_pets (your images)" in at.selectbox(key=K.dataset("source")).options
    assert at.text_input(key=K.FOLDER_PATH).value == "my_pets"  # the folder tab previews what was unpacked
    assert "is **one domain**: 3 classes, 15 images" in texts(at.markdown)
    assert (data / "folders" / "my_pets" / "dog" / "img4.png").is_file()

    slip = zip_bytes({"cat/a.png": png_bytes((1, 1, 1)), "/etc/evil.png": png_bytes((2, 2, 2))})
    at.file_uploader(key=K.UPLOAD).set_value(("evil.zip", slip, "application/zip")).run()
    assert_clean(at)
    error = texts(at.error)
    assert "`evil.zip` was refused; nothing was written" in error and "absolute path" in error
    assert not (data / "folders" / "evil").exists()


# --- torchvision files, downloads, the data directory ------------------------------------------------
def test_dataset_status_lists_present_missing_and_corrupt_mnist_files(tmp_path):
    data = tmp_path / "data"
    write_mnist_file(data, "train-images-idx3-ubyte")
    write_mnist_file(data, "train-labels-idx1-ubyte")
    truncated = write_mnist_file(data, "t10k-images-idx3-ubyte")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    at = open_page("pages/data.py", {K.DATA_DIR: str(data), K.DOWNLOAD_DATASET: "mnist"})
    markdown = texts(at.markdown)
    assert "`MNIST/raw/train-images-idx3-ubyte` — present" in markdown
    assert "`MNIST/raw/train-labels-idx1-ubyte` — present" in markdown
    assert "`MNIST/raw/t10k-labels-idx1-ubyte` — missing" in markdown
    assert "`MNIST/raw/t10k-images-idx3-ubyte` — corrupt" in markdown and "truncated" in markdown
    assert "1 of 4 files are corrupt" in markdown
    assert at.button(key=K.DOWNLOAD_START).disabled is False

    write_mnist_file(data, "t10k-images-idx3-ubyte")
    write_mnist_file(data, "t10k-labels-idx1-ubyte")
    at.run()
    assert "**mnist**: complete (4 files)" in texts(at.markdown)
    assert at.button(key=K.DOWNLOAD_START).disabled is True

    # the pair is read from that directory
    at.selectbox(key=K.dataset("source")).set_value("mnist")
    at.selectbox(key=K.dataset("target")).set_value("mnist").run()
    assert_clean(at)
    assert not at.error and len(at.get("plotly_chart")) == 4
    assert f"MNIST from {data} via torchvision.datasets.MNIST" in texts(at.markdown)


def test_download_offline_shows_the_engines_message_naming_the_files(tmp_path, monkeypatch):
    LocalWeb().as_proxy(monkeypatch)  # refuses every tunnel and serves nothing: offline, whatever DNS says
    data = tmp_path / "data"
    at = open_page("pages/data.py", {K.DATA_DIR: str(data), K.dataset("source"): "usps",
                                     K.dataset("target"): "usps"})
    # the pair is not loaded while its files are missing (that would download inside the page)
    assert "The files of usps are not all in" in texts(at.info) and not at.get("plotly_chart")
    assert at.radio(key=K.DOWNLOAD_DATASET).value == "usps"  # the download tab follows the chosen pair
    assert "`usps.bz2` — missing" in texts(at.markdown)

    at.button(key=K.DOWNLOAD_START).click().run()
    assert_clean(at)
    job_id = at.session_state[K.DOWNLOAD_JOB]["id"]
    assert get_worker().wait(job_id, timeout=120), "the download job did not end"
    at.run()
    assert_clean(at)
    error = texts(at.error)
    assert "The download of usps failed" in error and "could not be downloaded" in error
    assert "usps.bz2  from https://" in error and "usps.t.bz2" in error and f"Put these files under {data}" in error
    assert "Traceback" not in error
    assert not [p for p in data.rglob("*") if p.is_file()], "nothing, not even a partial file, is left behind"
    assert at.button(key=K.DOWNLOAD_START).disabled is False  # it can be tried again


def test_a_download_shows_its_progress_in_bytes_and_stop_ends_it(tmp_path, monkeypatch):
    # torchvision's https mirror is refused by the proxy; its http form gets 16 MiB, slowly
    proxy = LocalWeb(zeros=16 * 1024 * 1024, delay_s=0.05).as_proxy(monkeypatch)
    data = tmp_path / "data"
    try:
        at = open_page("pages/data.py", {K.DATA_DIR: str(data), K.DOWNLOAD_DATASET: "mnist"})
        at.button(key=K.DOWNLOAD_START).click().run()
        assert_clean(at)
        job = get_worker().job(at.session_state[K.DOWNLOAD_JOB]["id"])
        deadline = time.time() + 60
        while job.alive and job.progress < 0.02 and time.time() < deadline:
            time.sleep(0.05)
        assert job.alive and job.progress > 0, (job.error, job.message)
        at.run()  # what the fragment redraws twice a second
        assert_clean(at)
        bar = at.get("progress")[0].proto
        assert 0 < bar.value < 100 and bar.text.startswith("train-images-idx3-ubyte.gz: ")
        assert "of 16.8 MB" in bar.text and "· file 1 of 4" in bar.text
        assert "http://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in proxy.requests

        t0 = time.time()
        at.button(key=K.DOWNLOAD_STOP).click().run()
        assert_clean(at)
        assert time.time() - t0 < 10 and not job.alive and job.error is None
        assert "Stopped." in texts(at.warning) and not at.get("progress")
        assert not [p for p in data.rglob("*") if p.is_file()], "the partial file was removed"
        assert at.button(key=K.DOWNLOAD_START).disabled is False
    finally:
        proxy.close()


def test_a_corrupt_file_is_deleted_and_downloaded_again_from_the_page(tmp_path, monkeypatch):
    served = tmp_path / "server"
    write_mnist_archives(served, gz=True, monkeypatch=monkeypatch)  # torchvision expects these archives' MD5s
    archives = {p.name: p.read_bytes() for p in (served / "MNIST" / "raw").iterdir()}
    data = tmp_path / "data"
    for name in MNIST_FILES:
        write_mnist_file(data, name)
    corrupt = data / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    corrupt.write_bytes(corrupt.read_bytes()[:1000])  # what an interrupted download used to leave
    mine = data / "MNIST" / "notes.txt"
    mine.write_text("not a dataset file")
    with LocalWeb(archives).as_proxy(monkeypatch):
        at = open_page("pages/data.py", {K.DATA_DIR: str(data), K.DOWNLOAD_DATASET: "mnist"})
        assert "1 of 4 files are corrupt" in texts(at.markdown)
        assert at.button(key=K.DOWNLOAD_START).disabled is True  # nothing is missing: only the repair helps
        at.button(key=K.DOWNLOAD_REPAIR).click().run()
        assert_clean(at)
        job_id = at.session_state[K.DOWNLOAD_JOB]["id"]
        assert get_worker().wait(job_id, timeout=120), "the download job did not end"
        at.run()
    assert_clean(at)
    assert get_worker().job(job_id).error is None
    assert "mnist is complete" in texts(at.success) and "**mnist**: complete (4 files" in texts(at.markdown)
    assert not [b for b in at.button if b.key == K.DOWNLOAD_REPAIR]
    assert [s.state for s in tvd.dataset_status("mnist", data)] == ["ok"] * 4 and mine.is_file()


def test_the_data_directory_goes_into_the_run_the_train_page_starts(tmp_path):
    data = tmp_path / "my data"
    at = open_page("pages/data.py")
    assert at.text_input(key=K.DATA_DIR).value == ""
    assert str(tmp_path / "tlhome" / "data") in at.text_input(key=K.DATA_DIR).proto.placeholder
    at.text_input(key=K.DATA_DIR).input(f"  {data}  ").run()
    assert_clean(at)
    assert f"`{data}` (it does not exist yet" in texts(at.caption)
    at.switch_page("pages/train.py").run()  # the setting survives the page change; Start uses it
    assert at.session_state[K.DATA_DIR] == f"  {data}  "
    at.number_input(key=K.EPOCHS).set_value(1)
    at.button(key=K.START).click().run()
    assert_clean(at)
    run_id = at.session_state[K.RUN_ID]
    assert RunStore().get_run(run_id).config["data_dir"] == str(data)


def test_apply_config_restores_a_folder_dataset_and_the_data_directory():
    def script():
        import streamlit as st

        from pages import _keys as K
        from pages import _state
        from tlcore.config import RunConfig

        _state.init_state()
        _state.apply_config(RunConfig(source="folder:office/amazon:resize=32", target="usps:invert",
                                      data_dir="/srv/datasets"))
        st.session_state["roundtrip"] = (_state.spec_from_state("source"), _state.spec_from_state("target"),
                                         _state.config_from_state().data_dir, _state.dataset_choices()[-1])
        st.session_state[K.DATA_DIR] = "/elsewhere"
        _state.apply_config(RunConfig(source="moons", target="moons:rotate=30"))  # built-in data: setting kept
        st.session_state["kept"] = _state.data_dir_setting()

    at = AppTest.from_function(script)
    at.run()
    assert_clean(at)
    assert at.session_state["roundtrip"] == ("folder:office/amazon:resize=32", "usps:invert", "/srv/datasets",
                                             "folder:office/amazon")
    assert at.session_state["kept"] == "/elsewhere"


def test_a_file_whose_checksum_differs_is_listed_as_unverified_not_corrupt(tmp_path):
    import bz2

    data = tmp_path / "data"
    data.mkdir()
    (data / "usps.bz2").write_bytes(bz2.compress(b"1 1:0.5\n"))  # not torchvision's bytes
    at = open_page("pages/data.py", {K.DATA_DIR: str(data), K.DOWNLOAD_DATASET: "usps"})
    markdown = texts(at.markdown)
    assert "`usps.bz2` — checksum differs from torchvision's" in markdown and "usps.bz2 is present but its MD5" in markdown
    assert "`usps.t.bz2` — missing" in markdown and "files are corrupt" not in markdown
