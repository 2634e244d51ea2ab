"""Confinement and limits in the app (AppTest): the Data page's folder picker and data directory,
links carrying folder specs, the upload caps, and the Train page's bounds on epochs and data size.

The server's settings are environment variables (tlcore.policy), set per test; the conftest lets
the app read the whole test folder, and these tests narrow the roots to ``tmp_path/root``."""
from __future__ import annotations

import os
import zipfile
import io

import numpy as np
import pytest

from pages import _keys as K
from tests.test_app_sources import png_bytes, texts, write_domain, zip_bytes, _quiet_app  # noqa: F401
from tests.test_app_pages import assert_clean, open_page
from tlcore.runs import RunStore


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Data roots narrowed to tmp_path/root (plus the data directory); a folder inside, one outside."""
    root = tmp_path / "root"
    inside = write_domain(root / "pets")
    outside = write_domain(tmp_path / "private" / "pets")
    monkeypatch.setenv("TRANSFER_LAB_DATA_ROOTS", str(root))
    return root, inside, outside


def refused(at) -> str:
    warning = texts(at.warning)
    assert "This folder cannot be used." in warning and "outside the data folders this server lets the app read" \
        in warning, warning
    return warning


def test_the_folder_picker_refuses_paths_and_links_outside_the_data_roots(site):
    root, inside, outside = site
    (root / "escape").symlink_to(outside)
    sneaky = write_domain(root / "sneaky")
    (sneaky / "dog" / "z.png").symlink_to(outside / "dog" / "img0.png")
    at = open_page("pages/data.py")
    assert f"This server lets the app read folders below: {os.path.realpath(os.environ['TRANSFER_LAB_HOME'])}" \
        in texts(at.caption) and str(root) in texts(at.caption)
    for text in ("/", "/etc", "../../../../../../../etc", "pets/../../../../../../etc", str(root / "escape")):
        at.text_input(key=K.FOLDER_PATH).input(text).run()
        assert_clean(at)
        assert str(root) in refused(at)
        assert not at.dataframe  # nothing of it was listed
    at.text_input(key=K.FOLDER_PATH).input(str(sneaky)).run()
    assert "z.png is a link to" in refused(at)
    at.text_input(key=K.FOLDER_PATH).input(str(inside)).run()  # below a root: previewed as before
    assert_clean(at)
    assert "is **one domain**: 3 classes, 18 images" in texts(at.markdown)


def test_a_data_directory_outside_the_roots_is_refused(site, tmp_path):
    at = open_page("pages/data.py")
    at.text_input(key=K.DATA_DIR).input(str(tmp_path / "elsewhere")).run()
    assert_clean(at)
    error = texts(at.error)
    assert "The data directory cannot be used." in error and "is outside the data folders" in error
    assert len(at.get("plotly_chart")) == 4  # built-in data needs no directory: the default pair still shows


def test_a_link_with_a_folder_outside_the_roots_is_refused_in_the_app(site):
    root, inside, outside = site
    at = open_page("pages/data.py", query={"source": f"folder:{outside}", "target": f"folder:{inside}"})
    warning = texts(at.warning)
    assert "Some settings in the link were ignored" in warning
    assert f"`source=folder:{outside}`" in warning and "outside the data folders" in warning
    assert at.selectbox(key=K.dataset("source")).value == "moons"  # the default, not the folder
    assert at.selectbox(key=K.dataset("target")).value == f"folder:{inside}"  # inside a root: kept
    # a choice that reaches the state another way is still refused when the pair loads
    at = open_page("pages/data.py", {K.dataset("source"): f"folder:{outside}"})
    assert "outside the data folders" in texts(at.error)


def test_an_upload_over_the_caps_is_refused_before_anything_is_written(site, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("TRANSFER_LAB_MAX_UPLOAD_FILES", "4")
    data = tmp_path / "root" / "data"
    data.mkdir()
    at = open_page("pages/data.py", {K.DATA_DIR: str(data)})
    assert "a zip of at most 1 MiB and 4 files" in texts(at.caption)
    noise = np.random.default_rng(0).integers(0, 256, size=1_200_000, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # incompressible: above 1 MiB as a zip
        archive.writestr("cat/big.png", noise)
        archive.writestr("dog/a.png", png_bytes((1, 2, 3)))
    before = sorted(data.rglob("*"))
    at.file_uploader(key=K.UPLOAD).set_value(("big.zip", buffer.getvalue(), "application/zip")).run()
    assert_clean(at)
    error = texts(at.error)
    assert "`big.zip` was refused; nothing was written" in error and "above this server's upload limit of 1 MiB" \
        in error
    many = zip_bytes({f"{c}/{i}.png": png_bytes((i, 9, 9)) for c in ("cat", "dog") for i in range(3)})
    at.file_uploader(key=K.UPLOAD).set_value(("many.zip", many, "application/zip")).run()
    assert "6 entries, above the limit of 4" in texts(at.error)
    assert sorted(data.rglob("*")) == before == []  # not even a folders/ directory


def test_runs_past_the_limits_are_refused_with_a_message(site, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_MAX_EPOCHS", "5")
    monkeypatch.setenv("TRANSFER_LAB_MAX_EXAMPLES", "1600")
    at = open_page("pages/train.py")
    assert "at most 5 epochs and 1600 examples per domain" in texts(at.caption)
    at.number_input(key=K.EPOCHS).set_value(6)
    at.button(key=K.START).click().run()
    assert_clean(at)
    assert "epochs=6 is above this server's limit of 5 epochs" in texts(at.error)
    at = open_page("pages/train.py", {K.dataset("source"): "digits", K.dataset("target"): "digits"})
    at.number_input(key=K.EPOCHS).set_value(1)
    at.button(key=K.START).click().run()
    assert_clean(at)
    assert "digits holds 1797 examples" in texts(at.error) and "limit=N" in texts(at.error)
    assert RunStore().list_runs() == []


def test_a_sweep_on_data_outside_the_roots_is_refused_before_it_is_planned(site, monkeypatch):
    """Planning a sweep may read its data (a budget of "all"), so the roots are checked first."""
    from pages import _policy
    from tlcore.config import RunConfig
    from tlcore.errors import ConfinementError, LimitError
    from tlcore.sweeps import BudgetSweep, ComparisonSweep

    _, inside, outside = site
    with pytest.raises(ConfinementError):
        _policy.admit_sweep(BudgetSweep(source=f"folder:{inside}", target=f"folder:{outside}", budgets=("all",)))
    with pytest.raises(ConfinementError):
        _policy.admit_sweep(ComparisonSweep(arms=(("a", RunConfig(source=f"folder:{outside}")),)))
    monkeypatch.setenv("TRANSFER_LAB_MAX_EPOCHS", "3")
    sweep = BudgetSweep(source="moons", target="moons:rotate=30", budgets=(1,), seeds=(0,),
                        base=RunConfig(epochs=4))
    _policy.admit_sweep(sweep)  # its data is fine; its runs are too long
    with pytest.raises(LimitError, match="epochs=4"):
        _policy.admit_plan(sweep.plan())
