"""``PAFU_REQUIRE_SHARED=1`` turns every skip for missing ../shared data into a
failure (CI sets it); without it, such tests skip. Checked by running a small test
file against this folder's conftest.py in a subprocess."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

PROBE = """
from conftest import shared_path


def test_data(shared_data):
    assert shared_data.is_dir()


def test_raw(shared_raw):
    assert shared_raw.is_dir()


def test_sub_folder():
    shared_path("data", "NoSuchSet")


def test_file():
    shared_path("data", "SOURCES.md", kind="file")
"""


def _run(tmp_path, shared, require):
    folder = tmp_path / "probe"
    folder.mkdir(exist_ok=True)
    shutil.copy(HERE / "conftest.py", folder / "conftest.py")
    (folder / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k not in ("PAFU_SHARED", "PAFU_REQUIRE_SHARED")}
    env["PAFU_SHARED"] = str(shared)
    if require is not None:
        env["PAFU_REQUIRE_SHARED"] = require
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-c", os.devnull, folder],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return r.returncode, r.stdout + r.stderr


def _outcomes(out):
    """test name -> PASSED / SKIPPED / FAILED / ERROR from the -rA summary."""
    res = {}
    for line in out.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "SKIPPED", "FAILED", "ERROR") and "::" in rest:
            res[rest.split("::")[1].split(" ")[0]] = word
    return res


@pytest.mark.slow  # a pytest subprocess each (2-5 s): run by .ci/run's slow step
def test_missing_shared_skips_by_default(tmp_path):
    rc, out = _run(tmp_path, "/nonexistent/shared", None)
    assert rc == 0, out
    assert "4 skipped" in out, out


@pytest.mark.slow  # a pytest subprocess each (2-5 s): run by .ci/run's slow step
@pytest.mark.parametrize("flag", ["1", "yes"])
def test_missing_shared_fails_when_required(tmp_path, flag):
    rc, out = _run(tmp_path, "/nonexistent/shared", flag)
    assert rc == 1, out
    assert "skipped" not in out, out
    assert out.count("PAFU_REQUIRE_SHARED=1 forbids skipping") >= 4, out
    got = _outcomes(out)
    assert set(got) == {"test_data", "test_raw", "test_sub_folder", "test_file"}, out
    assert "PASSED" not in got.values() and "SKIPPED" not in got.values(), out


@pytest.mark.slow  # a pytest subprocess each (2-5 s): run by .ci/run's slow step
def test_required_flag_0_still_skips(tmp_path):
    rc, out = _run(tmp_path, "/nonexistent/shared", "0")
    assert rc == 0 and "4 skipped" in out, out


@pytest.mark.slow  # a pytest subprocess each (2-5 s): run by .ci/run's slow step
def test_a_missing_sub_folder_fails_when_required(tmp_path):
    """With the shared folder present, only the missing set fails."""
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    (shared / "raw").mkdir()
    (shared / "data" / "SOURCES.md").write_text("x")
    rc, out = _run(tmp_path, shared, "1")
    assert rc == 1, out
    got = _outcomes(out)
    assert got["test_data"] == got["test_raw"] == got["test_file"] == "PASSED", out
    assert got["test_sub_folder"] == "FAILED", out
    rc, out = _run(tmp_path, shared, None)
    assert rc == 0 and "3 passed, 1 skipped" in out, out
