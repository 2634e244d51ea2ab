"""The app's structure: no import cycle among ``pages``, every page goes through the shell.

``pages._shell`` is the app (navigation, sidebar, :func:`pages._shell.inside_app`); ``app.py``
only calls it. A page that forgets ``inside_app()``, or a helper module that imports the shell
(or ``app``) back, brings back the import circle and the bare page runs this layout removed.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages import _keys as K
from pages._shell import PAGES

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
MODULES = sorted(p.stem for p in (ROOT / "pages").glob("*.py") if p.stem != "__init__")


def _imports_of(path: Path) -> set[str]:
    """The ``pages`` modules and ``app`` that ``path`` imports, anywhere in the file (a function-level
    import closes a circle as surely as one at the top)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "pages":
            found |= {f"pages.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pages."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == "app" or a.name.startswith("pages.")}
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {f"pages.{m}": _imports_of(ROOT / "pages" / f"{m}.py") for m in MODULES}
    graph["app"] = _imports_of(ROOT / "app.py")
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done or node not in graph:
            return None
        for nxt in sorted(graph[node]):
            cycle = visit(nxt, path + [node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_find_cycle_finds_the_old_circle():
    """The checker itself: app → pages._ui → pages._url → pages._ui was the circle before the split."""
    old = {"app": {"pages._ui", "pages._url"}, "pages._ui": {"app", "pages._keys"}, "pages._url": {"pages._ui"},
           "pages._keys": set()}
    assert find_cycle(old) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_pages_modules_import_no_cycle():
    graph = import_graph()
    assert graph["app"] == {"pages._shell"}, "app.py only calls the shell"
    assert "pages._ui" not in set().union(*graph.values()), "pages._ui is gone; import the module that owns the helper"
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"
    # Helpers sit below the shell: only the shell and the pages themselves import it.
    helpers = [m for m in graph if m.startswith("pages._") and m != "pages._shell"]
    assert [m for m in helpers if "pages._shell" in graph[m]] == []


def test_each_pages_module_imports_first_in_a_fresh_interpreter():
    """Each helper module imported before any other ``pages`` module (the order a cycle breaks in).
    One interpreter, with ``pages`` dropped from ``sys.modules`` between modules, so torch and
    streamlit load once."""
    helpers = [m for m in MODULES if m.startswith("_")]
    code = ("import importlib, sys\n"
            f"for name in {helpers!r}:\n"
            "    for key in [k for k in sys.modules if k == 'pages' or k.startswith('pages.')]:\n"
            "        del sys.modules[key]\n"
            "    importlib.import_module('pages.' + name)\n"
            "print('ok', len(" f"{helpers!r}" "))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"ok {len(helpers)}"


def _first_statement(path: Path) -> ast.stmt:
    body = ast.parse(path.read_text()).body
    return next(s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom))
                and not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)))


def test_every_page_in_the_navigation_calls_inside_app_first():
    listed = [path for path, *_ in PAGES]
    on_disk = sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))
    assert sorted(listed) == on_disk, "every page file is in the navigation, and every navigation entry exists"
    for path in listed:
        first = _first_statement(ROOT / path)
        assert ast.unparse(first) == "_shell.inside_app()", f"{path} starts with {ast.unparse(first)!r}"


def _shell_drawn(at: AppTest) -> bool:
    """The sidebar the shell draws around every page (its seed field)."""
    return any(w.key == K.SEED for w in at.sidebar.number_input)


def test_app_shows_each_page_through_the_shell(monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_WARMUP", "0")
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[K.PROJECTION] = "PCA"  # no UMAP helper process here
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for path, title, _, _ in PAGES:
        at.switch_page(path).run()
        assert not at.exception, (path, [e.value for e in at.exception])
        assert _shell_drawn(at), f"{path} was drawn without the app's sidebar"
        assert at.title, f"{path} drew no title"

