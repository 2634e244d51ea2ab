"""Confinement and limits for a shared server, engine side: data roots (tlcore.data.roots) as a
parameter of the folder reader, the pair loader and the spec checks; the app's policy
(tlcore.policy): upload caps, epochs and examples per domain. The CLI passes no roots and keeps
full access. Real folders, real symbolic links, real zips."""
from __future__ import annotations

import io
import json
import os
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.test_app_sources import png_bytes, write_domain, zip_bytes
from tlcore.cli import main
from tlcore.config import RunConfig
from tlcore.data import DataRoots, check_spec_access, domain_size, load_domain, make_pair
from tlcore.data.archive import ArchiveLimits, extract_image_zip
from tlcore.data.folder import resolve_folder
from tlcore.data.sources import preview_folder
from tlcore.errors import ArchiveError, ConfigError, ConfinementError, LimitError
from tlcore.policy import DEFAULT_MAX_UPLOAD_MB, AppPolicy

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def site(tmp_path):
    """A data root with a usable folder, and a folder outside it (what another user keeps)."""
    root = tmp_path / "root"
    inside = write_domain(root / "pets")
    outside = write_domain(tmp_path / "private" / "pets")
    return DataRoots.of(root), root, inside, outside


@pytest.mark.parametrize("text", ["/", "/etc", "../../../../../../etc", "pets/../../private/pets"])
def test_paths_outside_the_roots_are_refused_naming_the_roots(site, text):
    roots, root, _, _ = site
    with pytest.raises(ConfinementError) as caught:
        preview_folder(text, data_dir=root.parent / "nowhere", roots=roots)
    message = str(caught.value)
    assert "outside the data folders" in message and str(root) in message and "TRANSFER_LAB_DATA_ROOTS" in message


def test_a_folder_below_a_root_reads_and_without_roots_everything_reads(site):
    roots, _, inside, outside = site
    assert preview_folder(str(inside), roots=roots).domains[0].images == 18
    assert preview_folder(str(outside)).domains[0].images == 18  # no roots: the CLI's full access
    with pytest.raises(ConfinementError):
        preview_folder(str(outside), roots=roots)


def test_links_that_leave_a_root_are_refused_at_every_level(site, tmp_path):
    roots, root, inside, outside = site
    (root / "linked").symlink_to(outside)  # the folder itself
    with pytest.raises(ConfinementError, match="resolved: .*private"):
        preview_folder(str(root / "linked"), roots=roots)
    mixed = write_domain(root / "mixed", classes=("cat", "dog"))
    (mixed / "fish").symlink_to(outside / "fish")  # a class folder
    with pytest.raises(ConfinementError, match="fish is a link to"):
        preview_folder(str(mixed), roots=roots)
    with pytest.raises(ConfinementError):
        check_spec_access(f"folder:{mixed}", roots=roots)
    sneaky = write_domain(root / "sneaky")
    (sneaky / "cat" / "z.png").symlink_to(outside / "cat" / "img0.png")  # one image file
    with pytest.raises(ConfinementError, match="z.png is a link to"):
        preview_folder(str(sneaky), roots=roots)
    with pytest.raises(ConfinementError, match="z.png is a link to"):
        load_domain(f"folder:{sneaky}", roots=roots)
    office = root / "office"
    write_domain(office / "amazon")
    (office / "webcam").symlink_to(outside)  # a domain folder
    with pytest.raises(ConfinementError, match="webcam is a link to"):
        preview_folder(str(office), roots=roots)
    # links that stay inside the roots are fine, and without roots the links are followed as before
    (root / "alias").symlink_to(inside)
    assert preview_folder(str(root / "alias"), roots=roots).domains[0].images == 18
    assert preview_folder(str(sneaky)).domains[0].images == 19


def test_a_root_that_is_a_link_admits_what_lies_below_its_target(tmp_path):
    disk = write_domain(tmp_path / "disk" / "pets").parent
    (tmp_path / "data").symlink_to(disk)
    roots = DataRoots.of(tmp_path / "data")
    assert roots.paths == (disk.resolve(),)
    assert resolve_folder(str(tmp_path / "data" / "pets"), roots=roots) == disk / "pets"
    assert resolve_folder(str(disk / "pets"), roots=roots) == disk / "pets"


def test_pairs_and_downloadable_data_respect_the_roots(site, tmp_path):
    roots, root, inside, outside = site
    pair = make_pair(f"folder:{inside}:resize=16", f"folder:{inside}:resize=16,invert", roots=roots)
    assert len(pair.class_names) == 3
    with pytest.raises(ConfinementError):
        make_pair(f"folder:{inside}:resize=16", f"folder:{outside}:resize=16", roots=roots)
    with pytest.raises(ConfinementError, match="the data directory of mnist"):
        load_domain("mnist", data_dir=tmp_path / "private", roots=roots)
    with pytest.raises(ConfinementError):
        check_spec_access("usps", data_dir="/", roots=roots)
    check_spec_access("digits:rotate=30", data_dir="/", roots=roots)  # built in: reads no file
    relative = root / "folders" / "pets"  # folder:NAME is looked up under <data dir>/folders
    write_domain(relative)
    check_spec_access("folder:pets", data_dir=root, roots=roots)


def test_domain_size_counts_without_decoding_and_honours_limit(site):
    roots, _, inside, _ = site
    (inside / "cat" / "broken.png").write_bytes(b"not a png")  # counted: it is only found broken when decoded
    assert domain_size(f"folder:{inside}", roots=roots) == 19
    assert domain_size(f"folder:{inside}:limit=2,invert") == 12  # 3 classes x 2 per class x (train, test)
    assert domain_size("digits") == 1797 and domain_size("digits:limit=5") == 100


def test_the_policy_reads_the_environment_and_refuses_bad_values(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFER_LAB_DATA_ROOTS", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]))
    monkeypatch.setenv("TRANSFER_LAB_MAX_EPOCHS", "7")
    monkeypatch.setenv("TRANSFER_LAB_MAX_UPLOAD_MB", "3")
    policy = AppPolicy.from_env()
    data_dir = Path(os.environ["TRANSFER_LAB_HOME"]) / "data"
    assert policy.roots.paths == (data_dir.resolve(), (tmp_path / "a").resolve(), (tmp_path / "b").resolve())
    assert policy.max_epochs == 7 and policy.max_upload_bytes == 3 * 1024 * 1024
    assert policy.archive_limits().max_archive_bytes == 3 * 1024 * 1024
    assert "at most 7 epochs" in "\n".join(policy.describe())
    monkeypatch.setenv("TRANSFER_LAB_MAX_EPOCHS", "many")
    with pytest.raises(ConfigError, match="TRANSFER_LAB_MAX_EPOCHS='many' is not a whole number"):
        AppPolicy.from_env()
    monkeypatch.setenv("TRANSFER_LAB_MAX_EPOCHS", "0")
    with pytest.raises(ConfigError, match="must be at least 1"):
        AppPolicy.from_env()


def test_run_limits_give_messages_that_name_the_limit_and_the_fix(site):
    roots, _, inside, outside = site
    policy = AppPolicy(roots=roots, max_epochs=10, max_examples=1600)
    policy.check_config(RunConfig(source="moons", target="moons:rotate=30", epochs=10))
    with pytest.raises(LimitError, match=r"epochs=11 is above this server's limit of 10 epochs .*TRANSFER_LAB_MAX_EPOCHS"):
        policy.check_config(RunConfig(epochs=11))
    with pytest.raises(LimitError, match=r"digits holds 1797 examples .* limit of 1600 .* limit=N"):
        policy.check_config(RunConfig(source="digits", target="digits:rotate=30", epochs=1))
    policy.check_config(RunConfig(source="digits:limit=50", target="digits:limit=50,rotate=30", epochs=1))
    with pytest.raises(ConfinementError):
        policy.check_config(RunConfig(source=f"folder:{outside}", target=f"folder:{inside}", epochs=1))
    with pytest.raises(LimitError, match="upload limit of 1024 MiB"):
        AppPolicy(roots=roots).check_upload(1024 * 1024 * 1024 + 1)


def test_a_zip_above_the_size_cap_is_refused_before_anything_is_written(tmp_path):
    data = tmp_path / "data"
    members = {f"cat/{i}.png": png_bytes((i, 0, 0)) for i in range(3)} | {f"dog/{i}.png": png_bytes((0, i, 0))
                                                                            for i in range(3)}
    archive = zip_bytes(members)
    small = ArchiveLimits(max_archive_bytes=len(archive) - 1)
    with pytest.raises(ArchiveError, match="above the upload limit"):
        extract_image_zip(io.BytesIO(archive), "pets", data_dir=data, limits=small)
    path = tmp_path / "pets.zip"
    path.write_bytes(archive)
    with pytest.raises(ArchiveError, match="above the upload limit"):
        extract_image_zip(path, data_dir=data, limits=small)
    with pytest.raises(ArchiveError, match="6 entries, above the limit of 5"):
        extract_image_zip(io.BytesIO(archive), "pets", data_dir=data, limits=ArchiveLimits(max_files=5))
    assert not data.exists()
    extract_image_zip(io.BytesIO(archive), "pets", data_dir=data, limits=ArchiveLimits(max_archive_bytes=len(archive)))
    assert len(list((data / "folders" / "pets").rglob("*.png"))) == 6


def test_the_upload_cap_the_page_states_is_the_servers(tmp_path):
    """.streamlit/config.toml's server.maxUploadSize is what the server enforces; the page states the
    policy's default: they must agree, or a zip between the two fails with a bare 413."""
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == DEFAULT_MAX_UPLOAD_MB


def test_the_cli_reads_folders_outside_the_apps_roots(site, monkeypatch, capsys):
    roots, root, _, outside = site
    monkeypatch.setenv("TRANSFER_LAB_DATA_ROOTS", str(root))  # the app's setting: it does not bind the CLI
    code = main(["gap", "--source", f"folder:{outside}:resize=8", "--target", f"folder:{outside}:resize=8,invert",
                 "--permutations", "20", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["source"] == f"folder:{outside}:resize=8" and result["mmd2"] > 0
    with pytest.raises(ConfinementError):
        AppPolicy.from_env().check_specs([f"folder:{outside}"])
