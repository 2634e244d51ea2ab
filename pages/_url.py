"""Shareable links: a page's whole configuration lives in the URL's query parameters.

A teacher copies the link of a page (the sidebar shows it under "Link to this setup") and
students who open it land on the same settings. A page declares its settings once::

    _shell.inside_app()
    _url.sync(_url.train_fields())                       # the Train page
    _url.sync([K.SEED, K.BUDGET, Field("w.nt.sweep", "sweep", choices=("budget", "shift"))])

API
---
``sync(fields, *, own=(), link=True)``
    Call it right after ``_shell.inside_app()``, before the page draws a widget. ``fields`` is a
    sequence whose entries are

    * a session-state key (``str``): its URL name, codec, default and valid values come from
      :data:`KNOWN` when it is one of the shared keys (seed, datasets, budget, strategy,
      schedule, Inspect's and Compare's settings), else its name is the key without ``w.``
      and its codec follows the type of its default;
    * a :class:`Field`, which says all that explicitly;
    * a callable returning such a sequence: it is called *after* the entries before it have
      been applied, so keys that depend on other values work (the shift controls depend on the
      dataset, a strategy's hyperparameters on the strategy; see :func:`data_fields`,
      :func:`strategy_fields`).

    ``own`` names query parameters the page manages itself (the Train page passes
    ``own=("run",)`` for its ``?run=``): ``sync`` neither reads, removes nor links them. Any other
    parameter that is not one of ``fields`` is reported as unknown and removed. ``link`` shows
    the link in the sidebar.

``page_link_url() -> str``
    The link to the current page with the settings written by the last ``sync``: the full URL
    when the browser told Streamlit its address, else the relative ``?name=value&…``.

``show_link()``
    Draws that link in the sidebar (``sync`` does it unless ``link=False``).

Rules
-----
* When a session first renders a page with settings in the URL, or when the URL's settings
  differ from what this session last wrote (a pasted link, the browser's back button), the
  URL wins: its values are decoded, checked and written into ``st.session_state``, entry by
  entry in order (so a dataset before its shifts); a setting absent from the URL takes its
  default, so a link reproduces the page exactly. Otherwise (no settings in the URL: Streamlit
  clears the query parameters when the user changes page; or the URL is what this session
  wrote) the session state wins and is written to ``st.query_params``.
* Only settings that differ from their default are written, so links stay short. A setting
  without a default (Inspect's run) is always written.
* A value that cannot be decoded, is not among the valid ones, or is out of range, and a name
  that is no setting of the page, is ignored (the setting keeps its default) and reported in
  one ``st.warning`` that names each parameter and the reason. The warning stays until the user
  changes a setting (the page may rerun by itself meanwhile).
* A widget drawn before the page (the sidebar's seed) cannot be set once drawn: its value from
  the URL is kept in session state, the script reruns once, and ``app.py`` applies it (see
  :func:`apply_pending`) before it draws the sidebar.

URL names: ``seed``, ``source``, ``target``, ``source.rotate``, ``target.invert`` (a shift of a
role), ``budget``, ``strategy``, ``dann.weight`` (a strategy's hyperparameter), ``epochs``,
``batch``, ``lr``, ``run``, ``projection``, ``by_class``, ``status``, ``strategies``, ``pair``.
A dataset may be a whole spec string (``target=digits:noise=0.4``); a link that names a dataset
starts from it unshifted (only the default target, ``moons``, defaults to its rotation).
Codecs: ints and floats as decimal text (``30``, ``0.003``), bools as ``1``/``0`` (``true``,
``false``, ``yes``, ``no``, ``on``, ``off`` are read too), lists comma-separated, an empty
optional number as an empty value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Sequence
from urllib.parse import urlencode

import streamlit as st
from streamlit.errors import StreamlitAPIException

from pages import _keys as K
from pages import _policy, _state
from tlcore.config import RunConfig, form_fields
from tlcore.data import DATASETS, parse_spec
from tlcore.data.folder import resolve_folder
from tlcore.errors import ConfinementError, TransferLabError
from tlcore.models import MODELS
from tlcore.runs import LISTED_STATUSES
from tlcore.strategies import STRATEGIES

__all__ = ["Codec", "Field", "INT", "FLOAT", "BOOL", "STR", "LIST", "OPTIONAL_FLOAT", "KNOWN", "sync",
           "apply_pending", "page_link_url", "show_link", "data_fields", "shift_fields", "strategy_fields",
           "param_fields", "train_fields", "url_name"]


# --- codecs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Codec:
    """How one kind of value reads and writes as URL text. ``decode`` raises ValueError with the
    reason (for the warning) when the text is not such a value."""

    kind: str
    encode: Callable[[Any], str]
    decode: Callable[[str], Any]


def _number_text(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _decode_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("not a whole number") from None


def _decode_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _decode_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError("not 1 or 0 (true or false)")


INT = Codec("int", lambda v: str(int(v)), _decode_int)
FLOAT = Codec("float", _number_text, _decode_float)
BOOL = Codec("bool", lambda v: "1" if v else "0", _decode_bool)
STR = Codec("str", str, lambda t: t)
LIST = Codec("list", lambda v: ",".join(str(x) for x in v), lambda t: [x for x in t.split(",") if x] if t else [])
OPTIONAL_FLOAT = Codec("optional float", lambda v: "" if v is None else _number_text(v),
                       lambda t: None if t.strip() in ("", "none") else _decode_float(t))


def codec_for(value: Any) -> Codec:
    """The codec of a default value's type (bool before int: a bool is an int in Python)."""
    for kind, codec in ((bool, BOOL), (int, INT), (float, FLOAT), (str, STR), ((list, tuple), LIST)):
        if isinstance(value, kind):
            return codec
    raise TypeError(f"no URL codec for a value of type {type(value).__name__}: give the Field a codec")


# --- fields ------------------------------------------------------------------------------------------
_LOOKUP = object()  # Field.default: look the default up in the app's defaults (pages._state.default_state)
NO_DEFAULT = object()  # Field.default: the setting has no default and is always in the URL


@dataclass(frozen=True)
class Field:
    """One setting of a page in the URL.

    ``key``: the session-state key; ``name``: the URL name (default :func:`url_name`);
    ``codec``: default from the type of the default value; ``default``: a value, a callable
    giving it, :data:`NO_DEFAULT`, or (left out) the app's default for the key; ``choices``
    (a sequence, or a callable giving one; for a list, each element must be one), ``lo`` and
    ``hi`` (inclusive) and ``check`` (a value -> the reason it is invalid, or None) say which
    values a link may set. ``expand`` (a valid value from the URL -> ``{key: value}``) lets one
    URL value set several settings: a dataset spec such as ``digits:noise=0.4`` sets the dataset
    and its shifts; the keys it sets other than ``key`` also become the defaults of their own
    fields for this link (a shift the link does not name takes the spec's value).
    """

    key: str
    name: str | None = None
    codec: Codec | None = None
    default: Any = _LOOKUP
    choices: Sequence | Callable[[], Sequence] | None = None
    lo: float | None = None
    hi: float | None = None
    check: Callable[[Any], str | None] | None = None
    expand: Callable[[Any], dict[str, Any]] | None = None


_NAMES = {K.SEED: "seed", K.dataset("source"): "source", K.dataset("target"): "target", K.BUDGET: "budget",
          K.STRATEGY: "strategy", K.EPOCHS: "epochs", K.BATCH_SIZE: "batch", K.LR: "lr", K.MODEL: "model",
          K.INSPECT_RUN: "run", K.PROJECTION: "projection", K.BY_CLASS: "by_class",
          K.STATUS_FILTER: "status", K.STRATEGY_FILTER: "strategies", K.PAIR_FILTER: "pair"}


def url_name(key: str) -> str:
    """The short URL name of a session-state key: ``w.data.target.shift.rotate`` ->
    ``target.rotate``, ``w.train.param.dann.weight`` -> ``dann.weight``, ``w.seed`` -> ``seed``;
    any other ``w.x.y`` -> ``x.y``."""
    if key in _NAMES:
        return _NAMES[key]
    for prefix, marker in (("w.data.", ".shift."), ("w.train.param.", None)):
        if key.startswith(prefix):
            rest = key[len(prefix):]
            return rest.replace(marker, ".", 1) if marker else rest
    return key[len(K.WIDGET):] if key.startswith(K.WIDGET) else key


def _dataset_reason(choice: str) -> str | None:
    """Why ``choice`` cannot be a dataset of the Data page's select boxes (None when it can): one of
    the offered datasets, or a dataset with an argument such as ``folder:pets`` whose folder lies below
    the server's data roots (a link must not read what the app may not; ``pages._policy``), or either
    with shifts (a spec string such as ``digits:noise=0.4``, as the CLI takes)."""
    choices = _state.dataset_choices()
    if choice in choices:
        return None
    try:
        spec = parse_spec(choice)
    except TransferLabError as exc:
        if choice.partition(":")[0] in DATASETS:  # a known dataset with a bad shift: say which
            return str(exc)
        return f"unknown dataset; choose one of {', '.join(choices)}"
    if spec.dataset == "folder" and spec.argument is not None:
        try:
            resolve_folder(spec.argument, _state.data_dir_setting() or None, _policy.policy().roots)
        except ConfinementError as exc:
            return str(exc)
        except TransferLabError:
            return None  # e.g. no such folder (yet): the Data page explains it when it loads the pair
    return None


def _dataset_field(role: str) -> Field:
    """The dataset of ``role``: a name or a whole spec string; either sets the role's shifts too
    (those the spec names, the others neutral), so that a link naming a dataset starts from that
    dataset unshifted rather than from the default target's rotation."""
    key = K.dataset(role)
    return Field(key, check=_dataset_reason, expand=lambda spec: _state.spec_state(role, spec))


def _run_field(name: str) -> Field:
    f = {x.name: x for x in form_fields(RunConfig)}[name]
    return Field({"epochs": K.EPOCHS, "batch_size": K.BATCH_SIZE, "lr": K.LR}[name], lo=f.min, hi=f.max)


KNOWN: dict[str, Field] = {
    K.SEED: Field(K.SEED, lo=0, hi=2**31 - 1),
    K.BUDGET: Field(K.BUDGET, lo=0, hi=100),
    K.dataset("source"): _dataset_field("source"),
    K.dataset("target"): _dataset_field("target"),
    K.STRATEGY: Field(K.STRATEGY, choices=lambda: list(STRATEGIES)),
    K.EPOCHS: _run_field("epochs"),
    K.BATCH_SIZE: _run_field("batch_size"),
    K.LR: _run_field("lr"),
    K.MODEL: Field(K.MODEL, choices=lambda: ["auto", *MODELS]),
    K.PROJECTION: Field(K.PROJECTION, choices=K.PROJECTIONS),
    K.BY_CLASS: Field(K.BY_CLASS),
    K.STATUS_FILTER: Field(K.STATUS_FILTER, choices=LISTED_STATUSES),
    K.STRATEGY_FILTER: Field(K.STRATEGY_FILTER, codec=LIST, choices=lambda: list(STRATEGIES)),
}
"""Shared keys that a page may pass to :func:`sync` as plain strings."""


def _shift_default(role: str, name: str) -> Any:
    """The default of ``role``'s shift ``name``: the app's default spec's value while the role's
    dataset is the default one (``moons:rotate=30`` for the target), else unshifted: another
    dataset does not inherit the default target's rotation."""
    if st.session_state.get(K.dataset(role)) == K.DEFAULTS[K.dataset(role)]:
        return _state.spec_state(role, getattr(RunConfig(), role))[K.shift(role, name)]
    c = _state.CONTROLS[name]
    return c.neutral if c.neutral is None or isinstance(c.neutral, bool) else float(c.neutral)


def shift_fields(role: str) -> list[Field]:
    """The shift controls that apply to ``role``'s current dataset (read from session state:
    pass ``lambda: shift_fields(role)`` after the dataset's key)."""
    kind = _state.dataset_info(st.session_state[K.dataset(role)]).kind
    out = []
    for c in _state.SHIFT_CONTROLS:
        if not _state.applies(c, kind):
            continue
        key = K.shift(role, c.name)
        default = (lambda name=c.name: _shift_default(role, name))
        if isinstance(c.neutral, bool):
            out.append(Field(key, codec=BOOL, default=default))
        else:
            lo, hi = _state.shift_range(c, kind)
            out.append(Field(key, codec=OPTIONAL_FLOAT if c.neutral is None else FLOAT, lo=lo, hi=hi,
                             default=default))
    return out


def data_fields() -> list:
    """The Data page's settings: both datasets, then their shifts, and the target label budget."""
    return [K.dataset("source"), K.dataset("target"), lambda: shift_fields("source") + shift_fields("target"),
            K.BUDGET]


def param_fields(strategy: str) -> list[Field]:
    """The hyperparameter widgets of ``strategy`` (from its Config dataclass)."""
    out = []
    for f in form_fields(STRATEGIES[strategy].Config):
        codec = codec_for(f.type()) if f.type in (bool, int, float, str) else None
        out.append(Field(K.param(strategy, f.name), codec=codec, choices=f.choices, lo=f.min, hi=f.max))
    return out


def strategy_fields() -> list:
    """The strategy, then its hyperparameters."""
    return [K.STRATEGY, lambda: param_fields(st.session_state[K.STRATEGY])]


def train_fields() -> list:
    """Everything a run is made of (a Train link is self-contained): seed, data, strategy and
    its hyperparameters, schedule."""
    return [K.SEED, *data_fields(), *strategy_fields(), K.EPOCHS, K.BATCH_SIZE, K.LR, K.MODEL]


# --- the mechanism -------------------------------------------------------------------------------------
def _as_field(entry: str | Field) -> Field:
    if isinstance(entry, Field):
        return entry
    if isinstance(entry, str):
        return KNOWN.get(entry) or Field(entry)
    raise TypeError(f"a URL field is a session-state key, a Field or a callable returning them, got {entry!r}")


def _walk(fields: Iterable, visit: Callable[[Field], None]) -> None:
    """Visit every field in order; a callable entry is expanded only when it is reached."""
    for entry in fields:
        if callable(entry) and not isinstance(entry, (str, Field)):
            _walk(entry(), visit)
        else:
            visit(_as_field(entry))


class _Defaults:
    """Default values, computed once per ``sync`` call."""

    def __init__(self) -> None:
        self._app: dict[str, Any] | None = None
        self.overrides: dict[str, Any] = {}  # set by a Field's expand (a spec's shifts)

    def get(self, f: Field) -> Any:
        if f.key in self.overrides:
            return self.overrides[f.key]
        if f.default is _LOOKUP:
            if self._app is None:
                self._app = _state.default_state()
            return self._app.get(f.key, NO_DEFAULT)
        if f.default is NO_DEFAULT:
            return NO_DEFAULT
        return f.default() if callable(f.default) else f.default


def _codec(f: Field, default: Any, current: Any) -> Codec:
    if f.codec is not None:
        return f.codec
    return codec_for(default if default is not NO_DEFAULT and default is not None else current)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


def _valid(f: Field, value: Any) -> str | None:
    """Why ``value`` is not a valid value of ``f`` (None when it is)."""
    choices = f.choices() if callable(f.choices) else f.choices
    if choices is not None:
        allowed = [str(c) for c in choices]
        items = value if isinstance(value, list) else [value]
        bad = [str(x) for x in items if str(x) not in allowed]
        if bad:
            shown = ", ".join(allowed[:12]) + (", …" if len(allowed) > 12 else "")
            return f"{', '.join(repr(b) for b in bad)} is not one of {shown}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if f.lo is not None and value < f.lo:
            return f"{value:g} is below the minimum {f.lo:g}"
        if f.hi is not None and value > f.hi:
            return f"{value:g} is above the maximum {f.hi:g}"
    return f.check(value) if f.check is not None else None


APP_PARAMS = ("present",)  # the app's own parameters, on every page (pages/_present.py): no page setting


def _url_settings(own: Collection[str]) -> dict[str, str]:
    return {name: text for name, text in st.query_params.to_dict().items()
            if name not in own and name not in APP_PARAMS}


def _from_url(fields: Sequence, url: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Write the URL's settings into session state; return what could not be written yet
    (widgets drawn before the page) and the warnings."""
    state, defaults = st.session_state, _Defaults()
    deferred: dict[str, Any] = {}
    problems: list[str] = []
    used: set[str] = set()

    def visit(f: Field) -> None:
        name = f.name or url_name(f.key)
        used.add(name)
        default = defaults.get(f)
        value, accepted = default, False
        if name in url:
            try:
                decoded = _codec(f, default, state.get(f.key)).decode(url[name])
            except ValueError as exc:
                problems.append(f"`{name}={url[name]}`: {exc}")
            else:
                reason = _valid(f, decoded)
                if reason is None:
                    value, accepted = decoded, True
                else:
                    problems.append(f"`{name}={url[name]}`: {reason}")
        if value is NO_DEFAULT:
            return
        updates = {f.key: value}
        if f.expand is not None and accepted:
            updates = f.expand(value)
            defaults.overrides.update({k: v for k, v in updates.items() if k != f.key})
        for key, v in updates.items():
            try:
                state[key] = v
            except StreamlitAPIException:  # its widget is already drawn this run (the sidebar's seed)
                deferred[key] = v

    _walk(fields, visit)
    for name in url:
        if name not in used:
            problems.append(f"`{name}`: not a setting of this page (or not one that applies to the other "
                            "settings in the link)")
    return deferred, problems


def _to_url(fields: Sequence, own: Collection[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Write the non-default settings of session state into the URL; return them, and the names
    of all the page's settings (which tell one page from another)."""
    state, defaults = st.session_state, _Defaults()
    desired: dict[str, str] = {}
    names: list[str] = []

    def visit(f: Field) -> None:
        names.append(f.name or url_name(f.key))
        value = state.get(f.key)
        default = defaults.get(f)
        if value is None and f.codec is not OPTIONAL_FLOAT:
            return
        if default is not NO_DEFAULT and _equal(value, default):
            return
        desired[f.name or url_name(f.key)] = _codec(f, default, value).encode(value)

    _walk(fields, visit)
    params = st.query_params
    current = _url_settings(own)
    for name in current.keys() - desired.keys():
        del params[name]
    for name, text in desired.items():
        if current.get(name) != text:
            params[name] = text
    return desired, tuple(names)


#: Query parameters that the app keeps on every page (the session's anonymous owner id, see
#: ``pages/_shell.py``): never read, removed nor put in a shared link by :func:`sync`.
APP_OWN = ("owner",)


def sync(fields: Sequence, *, own: Collection[str] = (), link: bool = True) -> None:
    """Keep the page's settings and the URL's query parameters in step (see the module's docstring)."""
    own = (*own, *APP_OWN)
    state = st.session_state
    pending = state.pop(K.URL_PENDING, None)
    problems = list(pending["warnings"]) if pending else []
    url = _url_settings(own)
    if url and url != state.get(K.URL_WRITTEN):
        deferred, found = _from_url(fields, url)
        problems += found
        state[K.URL_WRITTEN] = url
        if deferred:  # apply_pending (app.py) sets them before the sidebar is drawn again
            state[K.URL_PENDING] = {"values": deferred, "warnings": problems}
            st.rerun()
    written, names = _to_url(fields, own)
    state[K.URL_WRITTEN] = written
    if problems:  # shown until a setting changes (the page may rerun by itself, e.g. when a run ends)
        state[K.URL_PROBLEMS] = (names, written, problems)
    elif state.get(K.URL_PROBLEMS) and state[K.URL_PROBLEMS][:2] == (names, written):
        problems = state[K.URL_PROBLEMS][2]
    else:
        state.pop(K.URL_PROBLEMS, None)
    if problems:
        st.warning("**Some settings in the link were ignored** (the defaults are used instead):\n\n"
                   + "\n".join(f"- {p}" for p in problems), icon=":material/link_off:")
    if link:
        show_link()


def apply_pending() -> None:
    """app.py calls this before it draws the sidebar: the values a link set for widgets that were
    already drawn when the page read the link (see :func:`sync`)."""
    pending = st.session_state.get(K.URL_PENDING)
    if pending:
        for key, value in pending["values"].items():
            st.session_state[key] = value
        pending["values"] = {}


def page_link_url() -> str:
    """The link to this page with the settings the last :func:`sync` wrote (without the page's
    own parameters such as Train's ``run``): a full URL when the browser's address is known."""
    query = urlencode(st.session_state.get(K.URL_WRITTEN) or {})
    base = st.context.url or ""  # None without a browser (AppTest): the relative link
    return f"{base}?{query}" if query else (base or "?")


def show_link() -> None:
    """The link to this setup in the sidebar, in a code block with a copy button."""
    url = page_link_url()
    with st.sidebar.expander("Link to this setup", icon=":material/link:"):
        st.caption("Whoever opens this link lands on the same settings on this page (settings left at "
                   "their default are not in it).")
        st.markdown(f"```text\n{url}\n```")
