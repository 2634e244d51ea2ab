"""The conftest hook that fails every skip under CI=true unless it is allow-listed, run on a tiny
test directory by pytester (in process, with this suite's own conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py").read_text()
TINY = '''
import pytest

def test_passes():
    pass

def test_skips_in_the_body():
    pytest.skip("no network here")

@pytest.mark.skipif(True, reason="wrong platform")
def test_skipped_by_a_mark():
    pass

def test_allowed():
    pytest.skip("a fact of the machine")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False
'''


@pytest.fixture
def tiny(pytester):
    pytester.makeconftest(CONFTEST + '\nCI_ALLOWED_SKIPS["test_tiny.py::test_allowed"] = "allowed for the test"\n')
    pytester.makepyfile(test_tiny=TINY)
    return pytester


def test_under_ci_every_skip_fails_unless_allow_listed(tiny, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = tiny.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)  # a skip mark acts in setup
    out = result.stdout.str()
    assert "FAILED test_tiny.py::test_skips_in_the_body - skipped under CI=true (no network here)" in out
    assert "ERROR test_tiny.py::test_skipped_by_a_mark - skipped under CI=true (wrong platform)" in out
    assert "CI_ALLOWED_SKIPS" in out
    assert "test_tiny.py::test_allowed: allowed for the test" in out  # the allow-list is printed
    assert "skipped here and allowed: 1; skipped here and FAILED: 2" in out
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_under_ci_a_module_skipped_at_import_is_a_collection_error(tiny, monkeypatch):
    monkeypatch.setenv("CI", "true")
    tiny.makepyfile(test_module_skip='import pytest\npytest.skip("needs a GPU", allow_module_level=True)\n')
    result = tiny.runpytest("-p", "no:cacheprovider", "test_module_skip.py")
    assert "ERROR test_module_skip.py - skipped under CI=true (needs a GPU)" in result.stdout.str()
    assert result.ret != pytest.ExitCode.OK


def test_outside_ci_skips_stay_skips(tiny, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = tiny.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    assert "skips under CI=true" not in result.stdout.str() and result.ret == pytest.ExitCode.OK


def test_every_allow_listed_test_exists():
    """A stale entry would hide nothing but mislead: each names a test in this suite."""
    root = Path(__file__).resolve().parents[1]
    from tests.conftest import CI_ALLOWED_SKIPS

    for nodeid in CI_ALLOWED_SKIPS:
        path, name = nodeid.split("::")
        assert f"def {name}(" in (root / path).read_text(), nodeid
