"""Smoke tests of the maintained scripts in benchmarks/ and tools/: each answers
``--help`` with a usage line and exit status 0, and the models/README.md
generator writes nothing when asked for help and finds the file up to date."""

import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT_DIRS = ("benchmarks", "tools")


def _scripts():
    """Every Python and shell script under benchmarks/ and tools/ (modules whose
    name starts with an underscore are helpers, not scripts)."""
    found = []
    for d in SCRIPT_DIRS:
        for pattern in ("*.py", "*.sh"):
            found += [
                p
                for p in (REPO / d).rglob(pattern)
                if not p.name.startswith("_") and "__pycache__" not in p.parts
            ]
    return sorted(found)


def _run(script, *args, timeout=120):
    cmd = ["bash" if script.suffix == ".sh" else sys.executable, str(script), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_scripts_found():
    names = {p.relative_to(REPO).as_posix() for p in _scripts()}
    assert {"benchmarks/quality.sh", "benchmarks/make_dng.py", "tools/models_readme.py"} <= names


@pytest.mark.parametrize("script", _scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_help(script):
    r = _run(script, "--help")
    assert r.returncode == 0, f"{script} --help exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    assert "usage:" in r.stdout.lower(), f"{script} --help printed no usage line:\n{r.stdout}"


def test_models_readme_help_writes_nothing():
    readme = REPO / "models" / "README.md"
    before = (readme.read_bytes(), readme.stat().st_mtime_ns)
    r = _run(REPO / "tools" / "models_readme.py", "--help")
    assert r.returncode == 0
    assert (readme.read_bytes(), readme.stat().st_mtime_ns) == before


def test_models_readme_is_up_to_date():
    r = _run(REPO / "tools" / "models_readme.py", "--check")
    assert r.returncode == 0, r.stderr
