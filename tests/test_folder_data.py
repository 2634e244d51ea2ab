"""``folder:PATH`` image folders and safe zip extraction, on small trees written by the tests."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tlcore.data import load_domain, make_pair, parse_spec
from tlcore.data import folder as folder_module
from tlcore.data.archive import ArchiveLimits, extract_image_zip
from tlcore.data.folder import inspect_folder
from tlcore.errors import ArchiveError, ClassMismatchError, DatasetUnavailableError, SpecError

CLASSES = ("cat", "dog", "fish")


@pytest.fixture(autouse=True)
def _fresh_cache():
    folder_module.clear_cache()
    yield
    folder_module.clear_cache()


def write_image(path: Path, colour: tuple[int, int, int], size=(40, 30), mode="RGB", fmt=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    pixels = np.asarray(image).copy()
    pixels[size[1] // 2:, :, :] //= 2  # a lower half that differs, so a crop is visible
    image = Image.fromarray(pixels).convert(mode)
    image.save(path, format=fmt)


def write_domain(root: Path, classes=CLASSES, per_class=5, extension=".png", size=(40, 30)) -> Path:
    for label, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"img{i}{extension}", (80 * label + 10, 20 * i, 200 - 50 * label), size=size)
    return root


def image_bytes(colour=(255, 0, 0), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), colour).save(buffer, format=fmt)
    return buffer.getvalue()


# --------------------------------------------------------------------------- one domain
def test_a_class_folder_tree_loads_as_uint8_rgb_with_a_fixed_split(tmp_path):
    root = write_domain(tmp_path / "pets", per_class=10)
    (root / "cat" / "notes.txt").write_text("not an image")
    spec = f"folder:{root}:resize=16"
    domain = load_domain(spec, seed=3)
    assert domain.name == spec and parse_spec(spec).argument == str(root)
    assert domain.class_names == CLASSES
    assert domain.x_train.dtype == torch.uint8 and domain.input_shape == (3, 16, 16)
    assert domain.class_counts("train") == [7, 7, 7] and domain.class_counts("test") == [3, 3, 3]
    again = load_domain(spec, seed=9)
    assert torch.equal(domain.y_test, again.y_test) and torch.equal(domain.x_test, again.x_test)
    words = " ".join(domain.description)
    assert "3 classes, 30 image files" in words and "1 non-image file(s) ignored" in words
    assert "centre-cropped to 16×16" in words


def test_the_default_size_is_224_and_grayscale_becomes_rgb(tmp_path):
    root = tmp_path / "gray"
    for name in ("a", "b"):
        for i in range(3):
            write_image(root / name / f"{i}.jpg", (100, 100, 100), size=(300, 240), mode="L", fmt="JPEG")
    domain = load_domain(f"folder:{root}")
    assert domain.input_shape == (3, 224, 224)
    assert torch.equal(domain.x_train[:, 0], domain.x_train[:, 1])


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    root = write_domain(tmp_path / "pets", per_class=4)
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    good = (root / "cat" / "img0.png").read_bytes()
    (root / "cat" / "truncated.png").write_bytes(good[: len(good) // 2])
    domain = load_domain(f"folder:{root}:resize=8")
    assert len(domain.y_train) + len(domain.y_test) == 12
    skipped = [step for step in domain.description if step.startswith("2 unreadable image(s) skipped")]
    assert len(skipped) == 1
    assert "broken.jpg" in skipped[0] and "truncated.png" in skipped[0]


def test_a_leading_limit_is_applied_before_decoding(tmp_path, monkeypatch):
    root = write_domain(tmp_path / "pets", per_class=10)
    decoded = []
    original = folder_module.decode_image
    monkeypatch.setattr(folder_module, "decode_image", lambda path, size: decoded.append(path) or original(path, size))
    domain = load_domain(f"folder:{root}:limit=2,resize=8")
    assert domain.class_counts("train") == [2, 2, 2] and domain.class_counts("test") == [2, 2, 2]
    assert len(decoded) == 12


def test_too_large_for_memory_says_how_to_reduce(tmp_path, monkeypatch):
    root = write_domain(tmp_path / "pets")
    monkeypatch.setenv("TRANSFER_LAB_MAX_RESIDENT_MB", "1")
    with pytest.raises(SpecError) as info:
        load_domain(f"folder:{root}")
    message = str(info.value)
    assert "15 images of 3×224×224" in message and "resize=" in message and "limit=" in message
    assert "TRANSFER_LAB_MAX_RESIDENT_MB" in message and "Streaming" in message
    assert load_domain(f"folder:{root}:resize=32").input_shape == (3, 32, 32)


def test_images_without_class_folders_are_refused(tmp_path):
    write_image(tmp_path / "flat" / "a.png", (1, 2, 3))
    with pytest.raises(SpecError, match="no class folders"):
        load_domain(f"folder:{tmp_path / 'flat'}")
    with pytest.raises(DatasetUnavailableError, match="is not a directory"):
        load_domain(f"folder:{tmp_path / 'nowhere'}")


# --------------------------------------------------------------------------- several domains
def test_a_root_of_domains_is_refused_with_the_specs_to_write(tmp_path):
    office = tmp_path / "office31"
    for domain in ("amazon", "dslr", "webcam"):
        write_domain(office / domain / "images", per_class=3)  # Office-31 ships <domain>/images/<class>
    info = inspect_folder(office)
    assert info.kind == "domains" and info.domains == ("amazon", "dslr", "webcam")
    with pytest.raises(SpecError) as error:
        load_domain(f"folder:{office}:resize=8")
    assert f"folder:{office}/amazon" in str(error.value) and "3 domains" in str(error.value)
    domain = load_domain(f"folder:{office}/amazon:resize=8")
    assert domain.class_names == CLASSES


def test_two_domains_pair_and_a_class_mismatch_is_explained(tmp_path):
    write_domain(tmp_path / "pacs" / "photo", per_class=4)
    write_domain(tmp_path / "pacs" / "sketch", per_class=4, size=(25, 35))
    write_domain(tmp_path / "pacs" / "cartoon", classes=("cat", "dog", "horse"), per_class=4)
    pair = make_pair(f"folder:{tmp_path}/pacs/photo:resize=12", f"folder:{tmp_path}/pacs/sketch:resize=12,rotate=10",
                     target_labels=1)
    assert pair.class_names == CLASSES and pair.source.input_shape == pair.target.input_shape == (3, 12, 12)
    with pytest.raises(ClassMismatchError) as error:
        make_pair(f"folder:{tmp_path}/pacs/photo:resize=12", f"folder:{tmp_path}/pacs/cartoon:resize=12")
    assert "only in source: fish; only in target: horse" in str(error.value)


def test_relative_paths_are_looked_up_under_the_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    write_domain(data_dir / "folders" / "mine", per_class=3)
    domain = load_domain("folder:mine:resize=8", data_dir=data_dir)
    assert domain.name == "folder:mine:resize=8" and domain.num_classes == 3
    with pytest.raises(DatasetUnavailableError, match="looked up under"):
        load_domain("folder:other", data_dir=data_dir)


# --------------------------------------------------------------------------- zip uploads
def make_zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def folders(data_dir: Path) -> list[str]:
    parent = data_dir / "folders"
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_a_zip_of_domains_is_extracted_and_ready_to_use(tmp_path):
    entries = {f"office/{d}/{c}/{i}.png": image_bytes((40 * i, 90, 30)) for d in ("amazon", "webcam")
               for c in CLASSES for i in range(3)}
    entries.update({"office/README.md": b"hello", "__MACOSX/office/._x.png": b"meta", "office/amazon/cat/.DS_Store": b""})
    source = tmp_path / "office-31 (small).zip"
    source.write_bytes(make_zip(entries))
    result = extract_image_zip(source, data_dir=tmp_path)
    assert result.name == "office-31_small" and result.images == 18 and result.skipped == 3
    assert result.kind == "domains" and result.domains == ("amazon", "webcam")
    assert result.specs == ("folder:office-31_small/office/amazon", "folder:office-31_small/office/webcam")
    domain = load_domain(result.specs[1] + ":resize=8", data_dir=tmp_path)
    assert domain.class_names == CLASSES
    again = extract_image_zip(io.BytesIO(make_zip(entries)), name="office-31_small", data_dir=tmp_path)
    assert again.name == "office-31_small-2", "an existing folder is never overwritten unasked"


@pytest.mark.parametrize("bad_name", ["../evil.png", "cats/../../evil.png", "/etc/evil.png", "..\\evil.png",
                                      "C:/evil.png"])
def test_zip_slip_paths_refuse_the_whole_archive(tmp_path, bad_name):
    data = make_zip({"ok/cat/a.png": image_bytes(), bad_name: image_bytes()})
    with pytest.raises(ArchiveError, match="zip-slip"):
        extract_image_zip(io.BytesIO(data), name="slip", data_dir=tmp_path)
    assert folders(tmp_path) == [] and not (tmp_path / "evil.png").exists()


def test_a_bomb_like_archive_is_refused_before_writing(tmp_path):
    bomb = make_zip({"cat/a.png": image_bytes(), "cat/b.png": bytes(4 * 1024 * 1024)})
    assert len(bomb) < 50_000
    with pytest.raises(ArchiveError, match="zip bomb"):
        extract_image_zip(io.BytesIO(bomb), name="bomb", data_dir=tmp_path)
    assert folders(tmp_path) == []


def test_size_and_count_limits_refuse_an_archive(tmp_path):
    data = make_zip({f"c{i % 2}/{i}.png": image_bytes() for i in range(6)})
    with pytest.raises(ArchiveError, match="would unpack to"):
        extract_image_zip(io.BytesIO(data), data_dir=tmp_path, limits=ArchiveLimits(max_total_bytes=100))
    with pytest.raises(ArchiveError, match="6 entries"):
        extract_image_zip(io.BytesIO(data), data_dir=tmp_path, limits=ArchiveLimits(max_files=5))
    with pytest.raises(ArchiveError, match="per-file limit"):
        extract_image_zip(io.BytesIO(data), data_dir=tmp_path, limits=ArchiveLimits(max_file_bytes=10))
    assert folders(tmp_path) == []


def test_archives_without_usable_images_are_refused_and_leave_nothing(tmp_path):
    with pytest.raises(ArchiveError, match="no image files"):
        extract_image_zip(io.BytesIO(make_zip({"a.txt": b"x", "b.exe": b"y"})), data_dir=tmp_path)
    with pytest.raises(ArchiveError, match="not in class folders"):
        extract_image_zip(io.BytesIO(make_zip({"a.png": image_bytes()})), data_dir=tmp_path)
    with pytest.raises(ArchiveError, match="not a readable zip"):
        extract_image_zip(io.BytesIO(b"PK\x03\x04 garbage"), data_dir=tmp_path)
    assert folders(tmp_path) == []


def test_a_corrupt_image_inside_a_zip_is_skipped_when_loading(tmp_path):
    entries = {f"pets/{c}/{i}.png": image_bytes((60 * i, 20, 90)) for c in CLASSES for i in range(3)}
    entries["pets/dog/bad.jpg"] = b"\xff\xd8 not a jpeg"
    result = extract_image_zip(io.BytesIO(make_zip(entries)), name="pets", data_dir=tmp_path)
    assert result.specs == ("folder:pets/pets",) and result.classes == CLASSES
    domain = load_domain("folder:pets/pets:resize=8", data_dir=tmp_path)
    assert any(step.startswith("1 unreadable image(s) skipped: dog/bad.jpg") for step in domain.description)


def test_harmonising_a_pair_checks_the_memory_of_the_upsized_domain(tmp_path, monkeypatch):
    root = write_domain(tmp_path / "digits", classes=tuple(str(d) for d in range(10)), per_class=2)
    monkeypatch.setenv("TRANSFER_LAB_MAX_RESIDENT_MB", "20")
    with pytest.raises(SpecError, match=r"source digits:limit=300 resized to 64×64 to match the other domain.*TARGET:resize="):
        make_pair("digits:limit=300", f"folder:{root}:resize=64")
