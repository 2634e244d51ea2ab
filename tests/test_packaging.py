"""Packaging: what the code imports is declared, and CI runs the README's test command."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _names(block: str) -> set[str]:
    specs = re.findall(r'^\s*"([^"]+)"', block, flags=re.M)
    return {re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].strip().lower() for spec in specs}


def _declared() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()  # tomllib is Python 3.11+; the project supports 3.10
    return _names(re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.S | re.M).group(1))


def _optional() -> set[str]:
    """Packages of the optional extras that users install for a feature (``ray``), not the test extra."""
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[project\.optional-dependencies\](.*?)^\[", text, flags=re.S | re.M).group(1)
    names = set()
    for extra, block in re.findall(r"^(\w[\w-]*) = \[(.*?)^\]", section, flags=re.S | re.M):
        if extra != "test":
            names |= _names(block)
    return names


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside a function): these must be hard dependencies."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in tree.body:
        nodes = [node] if not isinstance(node, (ast.If, ast.Try)) else list(ast.walk(node))
        for n in nodes:
            if isinstance(n, ast.Import):
                names.update(alias.name.split(".")[0] for alias in n.names)
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                names.add(n.module.split(".")[0])
    return names


def _imported_top_levels() -> set[str]:
    names = set()
    for path in [ROOT / "app.py", *(ROOT / "pages").rglob("*.py"), *(ROOT / "tlcore").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("tlcore", "pages", "app")}


def test_every_third_party_import_of_the_app_and_engine_is_a_declared_dependency():
    providers = importlib.metadata.packages_distributions()
    declared, optional = _declared(), _optional()
    undeclared = {}
    for module in sorted(_imported_top_levels()):
        distributions = {d.lower() for d in providers.get(module, [module])}
        if not distributions & (declared | optional):
            undeclared[module] = sorted(distributions)
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


def test_an_optional_extra_is_imported_only_where_it_is_used():
    """``ray`` is an extra: importing tlcore or opening the app must work without it."""
    optional = _optional()
    assert "ray" in optional
    eager = {}
    for path in [ROOT / "app.py", *(ROOT / "pages").rglob("*.py"), *(ROOT / "tlcore").rglob("*.py")]:
        hits = _top_level_imports(path) & optional
        if hits:
            eager[str(path.relative_to(ROOT))] = sorted(hits)
    assert not eager, f"optional extras imported at module level: {eager}"


def test_ci_runs_the_readmes_full_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    full = [b.strip() for b in blocks if b.strip().endswith("python -m pytest")]
    assert len(full) == 1, full
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == full[0]
    assert 'python -m pytest -m "not slow and not browser"' in readme  # the fast developer command
