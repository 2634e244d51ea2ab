"""The Data page's engine side (tlcore.data.sources): a download job's progress and Stop, and the
preview of a folder of images, on real files and a real local server."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.localweb import LocalWeb
from tlcore.data import folder as folder_module
from tlcore.data.sources import folder_argument, preview_folder, progress_reporter
from tlcore.download import DownloadProgress, fetch_url
from tlcore.errors import DownloadStopped, SpecError, TransferLabError
from tlcore.worker import Job


@pytest.fixture(autouse=True)
def _fresh_folders():
    folder_module.clear_cache()
    yield
    folder_module.clear_cache()


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((12, 10, 3), colour, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_progress_callback_sets_the_jobs_progress_and_message():
    job = Job("download:test", "download")
    report = progress_reporter(job, planned=2)
    report(DownloadProgress("a.gz", "http://x/a.gz", 0, 10_000_000))
    report(DownloadProgress("a.gz", "http://x/a.gz", 5_000_000, 10_000_000))
    assert job.progress == pytest.approx(0.25) and job.message == "a.gz: 5.0 of 10.0 MB (50%) · file 1 of 2"
    report(DownloadProgress("a.gz", "http://x/a.gz", 10_000_000, 10_000_000, finished=True))
    report(DownloadProgress("b.gz", "http://x/b.gz", 1_000_000, None))
    assert job.progress == pytest.approx(0.5) and job.message == "b.gz: 1.0 of ? MB · file 2 of 2"
    report(DownloadProgress("b.gz", "http://x/b.gz", 2_000_000, 2_000_000, finished=True))
    assert job.progress == pytest.approx(0.99) and job.message.endswith("verifying and reading the files…")


def test_a_stopped_job_ends_a_real_transfer_at_the_next_report(tmp_path):
    payload = bytes(range(256)) * 4096 * 8  # 8 MiB: 32 chunks
    job = Job("download:stop", "download")
    inner = progress_reporter(job, planned=1)
    seen = []

    def report_then_stop(p):
        seen.append(p.done_bytes)
        if len(seen) == 3:
            job.stop_event.set()  # what the Stop button does
        inner(p)

    destination = tmp_path / "big.bin"
    with LocalWeb({"big.bin": payload}) as web, pytest.raises(DownloadStopped):
        fetch_url(f"{web.url}/big.bin", destination, progress=report_then_stop)
    assert len(seen) == 3 and 0 < seen[-1] < len(payload)  # ended at the report after the stop
    assert not destination.exists() and not list(tmp_path.glob("*.part"))


def test_preview_folder_reports_domains_classes_counts_and_problems(tmp_path):
    office = tmp_path / "office"
    for domain, classes in (("amazon", ("cat", "dog", "fish")), ("webcam", ("cat", "dog"))):
        for k, name in enumerate(classes):
            (office / domain / name).mkdir(parents=True)
            for i in range(2 + k):
                (office / domain / name / f"{i}.png").write_bytes(png((40 * k, 20 * i, 90)))
    (office / "amazon" / "dog" / "broken.png").write_bytes(b"not a PNG")
    (office / "webcam" / "cat" / "notes.txt").write_text("ignored")

    preview = preview_folder(f"  {office}/  ")
    assert preview.kind == "domains" and preview.argument == str(office)
    amazon, webcam = preview.domains
    assert amazon.classes == ("cat", "dog", "fish") and amazon.counts == (2, 4, 4) and amazon.images == 10
    assert amazon.unreadable == ("dog/broken.png",) and amazon.checked == 10
    assert webcam.counts == (2, 3) and webcam.other_files == 1 and webcam.unreadable == ()
    assert preview.specs == (f"folder:{office}/amazon", f"folder:{office}/webcam")
    assert preview.missing_classes() == {"webcam": ("fish",)}

    one = preview_folder(str(office / "webcam"))
    assert one.kind == "domain" and one.specs == (f"folder:{office}/webcam",)


def test_a_folder_that_cannot_be_a_spec_is_refused_with_the_reason(tmp_path):
    with pytest.raises(SpecError, match=f"a folder under {tmp_path / 'data' / 'folders'}"):
        folder_argument("   ", tmp_path / "data")
    with pytest.raises(SpecError, match="contains ':'"):
        folder_argument("/data/a:b")
    with pytest.raises(TransferLabError, match="is not a directory"):
        preview_folder(str(tmp_path / "nowhere"))
