"""Where the Data page's data comes from: the data directory, torchvision downloads, your own images.

:func:`render_data_sources` draws one expander on the Data page with three tabs:

* **Data directory and downloads**: the directory that holds the torchvision datasets
  (``RunConfig.data_dir``; empty = ``tlcore.paths.default_data_dir()``), each expected file of
  a dataset as present, to be extracted, missing or corrupt (``dataset_status``, no network),
  and a Download button that runs ``download_dataset`` in the background worker. A fragment
  polls the job twice a second for the progress bar; the download-progress callback, in the
  worker thread, only writes ``job.progress`` and ``job.message`` (never ``st.*``,
  ``tlcore.data.sources.progress_reporter``); Stop sets the job's stop event, which the engine's
  downloader watches, so it acts at once even on a stalled connection. Offline, the engine's
  message (the files expected, where to put them, where they come from) is shown as it is. A
  corrupt file gets a "Delete and download again" button (``remove_corrupt_files``, then a
  download).
* **A folder on this server**: a path (or a folder already under ``<data dir>/folders``)
  previewed with the engine's folder scanner (``tlcore.data.sources.preview_folder``): its domains, classes and image counts, files
  that are ignored or cannot be opened as images, and classes missing from some domains.
* **Upload a zip**: unpacked by ``tlcore.data.archive.extract_image_zip`` into
  ``<data dir>/folders``; an unsafe archive (zip-slip, bomb-like, no images) is refused with
  the engine's own reason and nothing is written. A zip above the server's caps (size, number of
  files: ``TRANSFER_LAB_MAX_UPLOAD_MB``, ``TRANSFER_LAB_MAX_UPLOAD_FILES``, stated on the tab) is
  refused before anything is written.

Confinement (``pages._policy``): the folder tab, ``folder:`` datasets and the data directory are
read only below the server's data roots (the data directory and ``TRANSFER_LAB_DATA_ROOTS``); a
path outside them, ``..`` climbing out, or a link leaving them is refused with the roots named.

Picked or uploaded folders become choices of the Data page's select boxes as ``folder:NAME``
or ``folder:NAME/DOMAIN`` (session state :data:`pages._keys.FOLDER_CHOICES`).

The function returns whether the pair can be loaded now: not while a chosen torchvision
dataset has missing files (loading would start a download inside the page, without progress)
or is being downloaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import streamlit as st

from tlcore.data.archive import ExtractedArchive, extract_image_zip
from tlcore.data.folder import FOLDERS_SUBDIR
from tlcore.data.roots import DataRoots
from tlcore.data.sources import FolderPreview, preview_folder, progress_reporter
from tlcore.data.torchvision_data import SOURCES, FileStatus, planned_downloads, resolve_data_dir
from tlcore.errors import DownloadStopped, TransferLabError
from tlcore.paths import default_data_dir
from tlcore.worker import Job, get_worker

from pages import _keys as K
from pages import _policy, _state

DOWNLOAD_POLL_S = 0.5
LISTED = 5                   # example file names listed in a message
STATE_WORDS = {"ok": "present", "extract": "in an archive that is present (extracted when loaded)",
               "missing": "missing", "corrupt": "corrupt",
               "unverified": "checksum differs from torchvision's (its content is checked when loaded: it loads "
                             "with a warning if well formed)"}
STATE_ICONS = {"ok": ":green[✔]", "extract": ":blue[⇩]", "missing": ":orange[✗]", "corrupt": ":red[⚠]",
               "unverified": ":orange[⚠]"}


# --- data directory --------------------------------------------------------------------------------
def data_root() -> Path:
    """The data directory in effect: the Data page's setting, else the default."""
    return resolve_data_dir(_state.data_dir_setting() or None)


def roots_key() -> tuple[str, ...]:
    """The server's data roots as text (a cache key)."""
    return tuple(str(path) for path in _policy.policy().roots.paths)


def upload_limit_mb() -> int:
    """The upload cap in effect: the policy's, unless the server refuses bodies earlier
    (``server.maxUploadSize``, which ``.streamlit/config.toml`` sets to the policy's default)."""
    return min(_policy.policy().max_upload_mb, int(st.get_option("server.maxUploadSize")))


# --- torchvision files and downloads ---------------------------------------------------------------
def download_job_id(name: str, root: Path) -> str:
    """One job per dataset and directory, shared by every session of this process."""
    return f"download:{name}:{root}"


def _download_key(status: FileStatus, root: Path) -> str:
    return str(status.path.relative_to(root)) if status.path.is_relative_to(root) else str(status.path)


def start_download(name: str, data_dir: str) -> str:
    """Download button callback: download ``name`` into ``data_dir`` in the background (or attach
    to the download of it that is already running) and remember the job in session state."""
    from tlcore.data.torchvision_data import download_dataset

    root = resolve_data_dir(data_dir or None)
    job_id = download_job_id(name, root)
    worker = get_worker()
    job = worker.job(job_id)
    if job is None or not job.alive:
        planned = planned_downloads(name, root)

        def work(job: Job) -> None:
            job.message = "connecting…"
            try:
                statuses = download_dataset(name, root, progress=progress_reporter(job, planned),
                                            stop=job.stop_event)
            except DownloadStopped:
                job.message = (f"Stopped. A file that was arriving was removed; files that had arrived "
                               f"complete and verified stay in {root}.")
                return
            other = sum(s.state == "unverified" for s in statuses)
            job.message = (f"{name} is complete in {root}: {len(statuses) - other} files verified"
                           + (f", {other} differ from torchvision's checksum but their content checked out "
                              "(loaded with a warning)." if other else "."))

        worker.start_job("download", work, job_id)
    st.session_state[K.DOWNLOAD_JOB] = {"id": job_id, "dataset": name, "data_dir": str(root)}
    return job_id


def delete_and_download(name: str, data_dir: str) -> None:
    """"Delete and download again" callback: remove exactly the corrupt files of ``name`` (the
    engine's ``remove_corrupt_files``), then download what is missing."""
    from tlcore.data.torchvision_data import remove_corrupt_files

    try:
        remove_corrupt_files(name, resolve_data_dir(data_dir or None))
    except TransferLabError as exc:
        st.session_state[K.DOWNLOAD_NOTICE] = str(exc)
        return
    start_download(name, data_dir)


def stop_download(job_id: str) -> None:
    """Stop button callback: the engine's downloader shuts the connection at once."""
    get_worker().stop(job_id, wait=2.0)


def _session_job(name: str | None = None, root: Path | None = None) -> Job | None:
    """This session's last download job (for ``name`` in ``root`` when given)."""
    record = st.session_state.get(K.DOWNLOAD_JOB)
    if not record:
        return None
    if name is not None and (record["dataset"] != name or record["data_dir"] != str(root)):
        return None
    return get_worker().job(record["id"])


@st.fragment(run_every=DOWNLOAD_POLL_S)
def _download_progress(job_id: str) -> None:
    """The live part of a download: redrawn alone twice a second; the whole page reruns once the
    job has ended, to show the result and load the pair."""
    job = get_worker().job(job_id)
    if job is None or not job.alive:
        st.rerun()
    st.progress(min(1.0, max(0.0, job.progress)), text=job.message or "starting…")
    st.button("Stop the download", key=K.DOWNLOAD_STOP, on_click=stop_download, args=(job_id,),
              disabled=job.stop_event.is_set())


def _status_lines(statuses: list[FileStatus], root: Path) -> list[str]:
    lines = []
    for s in statuses:
        line = f"- {STATE_ICONS[s.state]} `{_download_key(s, root)}` — {STATE_WORDS[s.state]}"
        if s.state in ("corrupt", "unverified"):
            line += f": {s.detail}"
        lines.append(line)
    return lines


def status_summary(name: str, statuses: list[FileStatus]) -> str:
    counts = {state: sum(s.state == state for s in statuses) for state in STATE_WORDS}
    if counts["corrupt"]:
        return (f"**{name}**: {counts['corrupt']} of {len(statuses)} files are corrupt or incomplete. Delete them "
                "and download again (the button below), or replace them with good copies.")
    if counts["missing"]:
        return f"**{name}**: {counts['missing']} of {len(statuses)} files missing."
    if counts["unverified"]:
        return (f"**{name}**: present; {counts['unverified']} of {len(statuses)} files differ from torchvision's "
                "checksum: they load with a warning if their content is well formed, and are refused otherwise.")
    return f"**{name}**: complete ({len(statuses)} files" + \
        (f", {counts['extract']} still packed in their archive)." if counts["extract"] else ").")


def _downloads_tab(root: Path, dir_error: str | None) -> None:
    from tlcore.data.torchvision_data import dataset_status

    st.text_input("Data directory", key=K.DATA_DIR, placeholder=str(default_data_dir()),
                  help="Where the torchvision datasets live, in torchvision's own layout (e.g. MNIST/raw/…, "
                       "usps.bz2, cifar-10-batches-py/), and where uploaded zips are unpacked (its folders/ "
                       "sub-folder). Empty: the default shown in the box. Runs started on the Train page use it.")
    where = f"Datasets are read from and downloaded into `{root}`"
    st.caption(where + ("." if root.is_dir() else " (it does not exist yet: a download or an upload creates it)."))
    if dir_error:
        return
    name = st.radio("Dataset files", list(SOURCES), index=None, key=K.DOWNLOAD_DATASET, horizontal=True,
                    help="\n\n".join(f"**{n}**: {s.summary}" for n, s in SOURCES.items()))
    if name is None:
        st.caption("Choose a dataset to see which of its files are in the data directory.")
        return
    try:
        statuses = dataset_status(name, root)
    except OSError as exc:
        st.error(f"The files of {name} in {root} cannot be checked: {exc}")
        return
    st.markdown(status_summary(name, statuses))
    st.markdown("\n".join(_status_lines(statuses, root)))
    job = _session_job(name, root)
    if job is None:  # another session may be downloading it
        job = get_worker().job(download_job_id(name, root))
        if job is not None and not job.alive:
            job = None
    if job is not None and job.alive:
        _download_progress(job.job_id)
        return
    if job is not None:  # this session's download of it has ended
        if job.error:
            st.error(f"**The download of {name} failed.**\n\n{job.error}")
        elif job.stop_event.is_set():
            st.warning(job.message)
        else:
            st.success(job.message)
    notice = st.session_state.pop(K.DOWNLOAD_NOTICE, None)
    if notice:
        st.error(notice)
    corrupt = [s for s in statuses if s.state == "corrupt"]
    if corrupt:
        st.button(f"Delete the {len(corrupt)} corrupt file(s) and download again", key=K.DOWNLOAD_REPAIR,
                  on_click=delete_and_download, args=(name, _state.data_dir_setting()), type="primary",
                  help="Deletes exactly the files marked corrupt above (" +
                       ", ".join(_download_key(s, root) for s in corrupt) + ") and downloads them afresh; "
                       "present and verified files stay.")
    missing = any(s.state == "missing" for s in statuses)
    st.button(f"Download {name}", key=K.DOWNLOAD_START, on_click=start_download, args=(name, _state.data_dir_setting()),
              disabled=not missing, type="primary" if missing else "secondary",
              help="Fetch the missing files from their official mirrors through torchvision, verifying each "
                   "checksum, into the data directory." if missing else "Every file is present.")


# --- your own images: a folder on this server ------------------------------------------------------
@st.cache_data(show_spinner=False, ttl=60, max_entries=8)
def _cached_preview(text: str, data_dir: str, roots: tuple[str, ...]) -> FolderPreview:
    return preview_folder(text, data_dir or None, roots=DataRoots.of(*roots))


def add_folder_choices(specs) -> list[str]:
    """Offer ``specs`` (``folder:…``) in the Data page's select boxes; returns the new ones."""
    choices = list(st.session_state.get(K.FOLDER_CHOICES, []))
    added = [spec for spec in specs if spec not in choices]
    st.session_state[K.FOLDER_CHOICES] = choices + added
    return added


def _add_previewed() -> None:
    """Add button callback: offer every domain of the previewed folder."""
    try:
        preview = _cached_preview(st.session_state.get(K.FOLDER_PATH, ""), _state.data_dir_setting(), roots_key())
    except TransferLabError as exc:
        st.session_state[K.FOLDER_NOTICE] = ("error", str(exc))
        return
    add_folder_choices(preview.specs)
    listed = ", ".join(f"`{spec}`" for spec in preview.specs)
    st.session_state[K.FOLDER_NOTICE] = (
        "success", f"In the dataset lists now: {listed}. Choose them as Source or Target above.")


def use_folder(role: str, spec: str) -> None:
    """"Use as source/target" callback: offer ``spec`` and select it for ``role``."""
    add_folder_choices([spec])
    st.session_state[K.dataset(role)] = spec


def _pick_folder() -> None:
    """A folder under <data dir>/folders was clicked: put its name in the path field."""
    picked = st.session_state.get(K.FOLDER_PICK)
    if picked:
        st.session_state[K.FOLDER_PATH] = picked
        st.session_state[K.FOLDER_PICK] = None  # a shortcut, not a setting: the path field says what is shown


def _existing_folders(root: Path) -> list[str]:
    try:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _show_preview(preview: FolderPreview) -> None:
    import pandas as pd

    if preview.kind == "domain":
        d = preview.domains[0]
        st.markdown(f"`{preview.path}` is **one domain**: {len(d.classes)} classes, {d.images} images · "
                    f"`{d.spec}`")
    else:
        st.markdown(f"`{preview.path}` holds **{len(preview.domains)} domains** "
                    f"({', '.join(d.name for d in preview.domains)}), each with its own class folders.")
    table = pd.DataFrame({d.name: dict(zip(d.classes, d.counts)) for d in preview.domains}).fillna(0).astype(int)
    table.index.name = "class"
    st.dataframe(table, width="stretch", height=min(400, 38 + 35 * len(table)))
    missing = preview.missing_classes()
    if missing:
        lines = [f"- **{name}** lacks {', '.join(classes)}" for name, classes in missing.items()]
        st.warning("**The domains do not share one class set.** A pair needs the same classes on both sides, so "
                   "a pair of domains with different classes is refused:\n" + "\n".join(lines))
    for d in preview.domains:
        notes = []
        if d.other_files:
            notes.append(f"{d.other_files} file(s) without an image extension are ignored")
        if d.checked < d.images:
            notes.append(f"the first {d.checked} of {d.images} images were opened to check them; the rest are "
                         "checked when loaded")
        if notes:
            st.caption(f"{d.name}: " + "; ".join(notes) + ".")
        if d.unreadable:
            more = f" and {len(d.unreadable) - LISTED} more" if len(d.unreadable) > LISTED else ""
            st.warning(f"{d.name}: {len(d.unreadable)} image file(s) cannot be read as images and are skipped "
                       f"when loading: {', '.join(d.unreadable[:LISTED])}{more}.")
    st.button("Add to the dataset lists", key=K.FOLDER_ADD, on_click=_add_previewed,
              help="Offer " + ", ".join(preview.specs) + " as Source and Target datasets.")
    for d in preview.domains[:12]:
        a, b, c = st.columns([3, 1, 1], vertical_alignment="center")
        a.markdown(f"`{d.spec}` · {len(d.classes)} classes · {d.images} images")
        b.button("Use as source", key=K.folder_use("source", d.spec), on_click=use_folder, args=("source", d.spec))
        c.button("Use as target", key=K.folder_use("target", d.spec), on_click=use_folder, args=("target", d.spec))


def _folder_tab(root: Path) -> None:
    under = root / FOLDERS_SUBDIR
    existing = _existing_folders(under)
    if existing:
        st.radio(f"Folders in {under}", existing, index=None, key=K.FOLDER_PICK, horizontal=True,
                 on_change=_pick_folder)
    allowed = _policy.policy().roots.describe()
    st.text_input("Folder", key=K.FOLDER_PATH, placeholder=f"/path/to/office31, or a name under {under}",
                  help="ROOT/<class>/<image> (one domain), or ROOT/<domain>/<class>/<image> as Office-31, "
                       "Office-Home and PACS ship. A relative name is looked up under the data directory's "
                       f"folders/, where uploaded zips go. Only folders below {allowed} can be read.")
    st.caption(f"This server lets the app read folders below: {allowed}.")
    notice = st.session_state.pop(K.FOLDER_NOTICE, None)
    if notice:
        getattr(st, notice[0])(notice[1])
    text = st.session_state.get(K.FOLDER_PATH, "")
    if not str(text).strip():
        st.caption("Images are converted to RGB and cut to 224×224 when loaded; start the spec with a size "
                   "(the resize shift under More shifts) for smaller, faster images.")
        return
    try:
        preview = _cached_preview(str(text), _state.data_dir_setting(), roots_key())
    except TransferLabError as exc:
        st.warning(f"**This folder cannot be used.** {exc}")
        return
    _show_preview(preview)


# --- your own images: an uploaded zip --------------------------------------------------------------
@dataclass(frozen=True)
class ZipImport:
    """What became of one uploaded zip: ``archive`` when it was unpacked, else ``error``."""

    filename: str
    archive: ExtractedArchive | None = None
    error: str | None = None


def import_zip(source: str | os.PathLike | BinaryIO, filename: str, data_dir: str | None = None) -> ZipImport:
    """Unpack an uploaded zip into ``<data dir>/folders/<its name>`` (``-2``, ``-3``… when taken)
    with the engine's safe extractor; an archive it refuses comes back with its reason. The server's
    caps are checked first: a zip above them (its size, then its number of entries) and a data
    directory outside the data roots are refused before anything is written."""
    policy = _policy.policy()
    try:
        size = getattr(source, "size", None)
        if isinstance(size, int):  # Streamlit's UploadedFile: refuse it before anything else
            policy.check_upload(size, f"`{filename}`")
        policy.roots.check(resolve_data_dir(data_dir or None), "the data directory")
        archive = extract_image_zip(source, name=Path(filename).stem or "upload", data_dir=data_dir or None,
                                    limits=policy.archive_limits())
    except TransferLabError as exc:
        return ZipImport(filename, error=str(exc))
    return ZipImport(filename, archive=archive)


def zip_report(result: ZipImport) -> list[str]:
    """The outcome of an upload in words (markdown lines)."""
    if result.archive is None:
        return [f"**`{result.filename}` was refused; nothing was written.** {result.error}"]
    a = result.archive
    lines = [f"Unpacked **{a.images} image(s)** ({a.bytes_written / 1e6:.1f} MB) from `{result.filename}` into "
             f"`{a.root}`."]
    if a.skipped:
        more = f" and {a.skipped - len(a.skipped_examples)} more" if a.skipped > len(a.skipped_examples) else ""
        lines.append(f"Skipped {a.skipped} file(s) that are not images (or are hidden, metadata or links): "
                     f"{', '.join(a.skipped_examples)}{more}.")
    if a.kind == "domain":
        lines.append(f"One domain with {len(a.classes)} classes ({', '.join(a.classes)}).")
    else:
        lines.append(f"{len(a.domains)} domains: {', '.join(a.domains)}.")
    lines.append("In the dataset lists now: " + ", ".join(f"`{spec}`" for spec in a.specs) + ".")
    return lines


def _on_upload() -> None:
    """The uploader's callback: unpack the new zip, offer its domains, and preview it."""
    uploaded = st.session_state.get(K.UPLOAD)
    if uploaded is None:
        return
    result = import_zip(uploaded, uploaded.name, _state.data_dir_setting())
    st.session_state[K.UPLOAD_RESULT] = result
    if result.archive is not None:
        add_folder_choices(result.archive.specs)
        st.session_state[K.FOLDER_PATH] = result.archive.name  # the folder tab previews it


def _upload_tab(root: Path) -> None:
    limit_mb, files = upload_limit_mb(), _policy.policy().max_upload_files
    st.file_uploader("A zip of images: <class>/<image>, or <domain>/<class>/<image>", type=["zip"], key=K.UPLOAD,
                     on_change=_on_upload, max_upload_size=limit_mb,
                     help=f"Unpacked into {root / FOLDERS_SUBDIR}. Refused whole, with nothing written: zips above "
                          f"{limit_mb} MiB or {files} files, paths that climb out of the folder (zip-slip), archives "
                          "that unpack far larger than they are (zip bombs) or above 4 GiB, and archives without "
                          "images. Files that are not images are skipped. For larger datasets, unpack them on the "
                          "server below a data folder and use the folder tab.")
    st.caption(f"Limits on this server: a zip of at most {limit_mb} MiB and {files} files "
               "(TRANSFER_LAB_MAX_UPLOAD_MB, TRANSFER_LAB_MAX_UPLOAD_FILES).")
    result = st.session_state.get(K.UPLOAD_RESULT)
    if result is None:
        return
    lines = zip_report(result)
    if result.archive is None:
        st.error("\n\n".join(lines))
    else:
        st.success("\n\n".join(lines))


# --- the panel -------------------------------------------------------------------------------------
def _chosen_downloadables() -> list[str]:
    """The torchvision datasets among the current source and target, in that order."""
    names = []
    for role in K.ROLES:
        choice = st.session_state.get(K.dataset(role))
        name = _state.split_choice(choice)[0] if isinstance(choice, str) else None
        if name in SOURCES and name not in names:
            names.append(name)
    return names


def render_data_sources() -> bool:
    """Draw the data-sources panel (see the module docstring); True when the pair can be loaded."""
    from tlcore.data.torchvision_data import dataset_status

    state = st.session_state
    root = data_root()
    dir_error = None
    if not _policy.policy().roots.contains(root):
        dir_error = (f"The data directory {root} is outside the data folders this server lets the app read "
                     f"({_policy.policy().roots.describe()}): type a directory below one of them, or leave the "
                     "box empty for the default.")
    elif root.exists() and not root.is_dir():
        dir_error = f"The data directory {root} is a file, not a directory: type another path."
    chosen = _chosen_downloadables()
    missing, problems = [], []
    for name in chosen:
        try:
            if dir_error is None and any(s.state == "missing" for s in dataset_status(name, root)):
                missing.append(name)
        except OSError as exc:
            problems.append(f"the files of {name} in {root} cannot be checked: {exc}")
    running = [name for name in chosen if get_worker().is_alive(download_job_id(name, root))]
    # The download tab follows the pair: it shows the first chosen dataset that needs files.
    if chosen and state.get(K.DOWNLOAD_FOLLOWS) != chosen:
        state[K.DOWNLOAD_DATASET] = (running or missing or chosen)[0]
    state[K.DOWNLOAD_FOLLOWS] = chosen

    attention = bool(missing or running or dir_error or problems)
    with st.expander("Data directory, downloads and your own images", expanded=attention,
                     icon=":material/folder_open:"):
        downloads, folder, upload = st.tabs(["Data directory and downloads", "A folder on this server",
                                             "Upload a zip"])
        with downloads:
            _downloads_tab(root, dir_error)
        with folder:
            _folder_tab(root)
        with upload:
            _upload_tab(root)

    if dir_error or problems:
        st.error("**The data directory cannot be used.** " + "; ".join(filter(None, [dir_error, *problems])))
        return not chosen and not problems  # built-in data does not need it
    if running:
        st.info(f"Downloading {', '.join(running)}: the examples and the gap appear when it is complete.")
        return False
    if missing:
        st.info(f"The files of {', '.join(missing)} are not all in `{root}`. Download them under *Data directory "
                "and downloads* above, or put them there (the list above shows each file).")
        return False
    return True
