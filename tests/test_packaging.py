"""Packaging: what the code imports is declared, and CI runs the README's test command."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()  # tomllib is Python 3.11+; the project supports 3.10
    block = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.S | re.M).group(1)
    specs = re.findall(r'^\s*"([^"]+)"', block, flags=re.M)
    return {re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].strip().lower() for spec in specs}


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
    declared = _declared()
    undeclared = {}
    for module in sorted(_imported_top_levels()):
        distributions = {d.lower() for d in providers.get(module, [module])}
        if not distributions & declared:
            undeclared[module] = sorted(distributions)
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


def test_ci_runs_the_readmes_full_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    full = [b.strip() for b in blocks if b.strip().endswith("python -m pytest")]
    assert len(full) == 1, full
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == full[0]
    assert 'python -m pytest -m "not slow and not browser"' in readme  # the fast developer command
