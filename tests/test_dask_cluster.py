"""Batches on a Dask cluster (``--scheduler``), with real worker processes on this
machine: outputs byte-identical to a local run, bad files listed, a worker
killed mid-batch loses nothing and leaves nothing, models read once per worker."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pafu_cli.cli.main import main
from pafu_cli.io.images import write_image

distributed = pytest.importorskip("distributed")

# Real clusters start worker processes (about 40 s in all with cold imports): run by
# .ci/run's slow step and by `pytest -m slow`, not by the default suite.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    c = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",  # any free port: a second cluster must not clash on 8787
        silence_logs=logging.CRITICAL,
        env={"NUMBA_NUM_THREADS": "1"},
    )
    client = distributed.Client(c)
    yield c, client
    client.close()
    c.close()


def _images(folder: Path, n: int, shape=(96, 128), bad=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(n):
        h, w = shape[0] + 2 * i, shape[1] + i
        if i % 5 == 4:  # some 16-bit and grey inputs
            img = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        else:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        write_image(folder / f"im{i:02d}.png", img)
    if bad:
        (folder / "zz_bad.png").write_bytes(b"not an image")
    return folder


def _pafu(*args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "pafu_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=e,
        timeout=300,
    )


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_cluster_batch_equals_a_local_run_and_lists_the_bad_file(tmp_path, cluster):
    c, client = cluster
    src = _images(tmp_path / "in", 20)
    local = _pafu("upscale", "-s", "2", src, tmp_path / "local")
    remote = _pafu(
        "upscale", "-s", "2", src, tmp_path / "remote", env={"PAFU_SCHEDULER": c.scheduler_address}
    )
    assert local.returncode == remote.returncode == 1
    assert "20 written, 0 skipped (exist), 1 failed" in remote.stderr
    bad_lines = [line for line in remote.stderr.splitlines() if "zz_bad.png" in line]
    assert bad_lines and all(str(src / "zz_bad.png") in line for line in bad_lines)  # named as given
    assert "Traceback" not in remote.stderr
    want, got = _files(tmp_path / "local"), _files(tmp_path / "remote")
    assert len(got) == 20 and got == want  # byte-identical, nothing else in the folder
    # Each worker read the default x2 model once at most, whatever its number of files.
    from pafu_cli.models.registry import model_loads

    loads = client.run(model_loads)
    assert sorted(loads.values()) in ([0, 1], [1, 1]), loads
    # Again: every output exists, so nothing is sent.
    again = _pafu("upscale", "-s", "2", "--scheduler", c.scheduler_address, src, tmp_path / "remote")
    assert "0 written, 20 skipped (exist), 1 failed" in again.stderr


def test_a_worker_killed_mid_batch_loses_nothing(tmp_path, cluster):
    c, client = cluster
    src = _images(tmp_path / "in", 20, shape=(360, 480), bad=False)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pafu_cli",
            "upscale",
            "-s",
            "2",
            "--scheduler",
            c.scheduler_address,
            src,
            out,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and any(out.glob("im*.png"))):
        time.sleep(0.05)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)  # whatever it is writing is left half-done
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "20 written" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"im{i:02d}.png" for i in range(20)]  # no temporary or partial file left
    ref = tmp_path / "ref"
    assert _pafu("upscale", "-s", "2", src, ref).returncode == 0
    assert _files(out) == _files(ref)
    assert victim not in client.run(os.getpid).values()  # the worker was replaced


@pytest.mark.parametrize("command", ["demosaick", "guided-upsample"])
def test_other_commands_on_a_local_cluster(tmp_path, command):
    rng = np.random.default_rng(2)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        if command == "demosaick":
            write_image(src / f"m{i}.png", rng.integers(0, 65536, (64 + 2 * i, 80), dtype=np.uint16))
        else:
            write_image(src / f"d{i}_depth.png", rng.integers(0, 65536, (16, 20), dtype=np.uint16))
            write_image(src / f"d{i}_rgb.png", rng.integers(0, 256, (128, 160, 3), dtype=np.uint8))
    if command == "demosaick":
        args = ["demosaick", "--pattern", "GRBG", src]
    else:
        args = ["guided-upsample", str(src / "*_depth.png"), src]
    local = _pafu(*args, tmp_path / "local")
    remote = _pafu(*args, tmp_path / "remote", "--scheduler", "local:2")
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert "3 written" in remote.stderr
    assert _files(tmp_path / "local") == _files(tmp_path / "remote")


def test_one_file_with_its_selection_map_on_a_cluster(tmp_path, cluster):
    c, _ = cluster
    src = _images(tmp_path / "in", 1, bad=False) / "im00.png"
    r = _pafu(
        "upscale",
        "-s",
        "3",
        "--scheduler",
        c.scheduler_address,
        src,
        tmp_path / "o.png",
        "--selection-map",
        tmp_path / "sel.png",
    )
    assert r.returncode == 0, r.stderr
    ref = _pafu("upscale", "-s", "3", src, tmp_path / "ref.png", "--selection-map", tmp_path / "ref_sel.png")
    assert ref.returncode == 0
    assert (tmp_path / "o.png").read_bytes() == (tmp_path / "ref.png").read_bytes()
    assert (tmp_path / "sel.png").read_bytes() == (tmp_path / "ref_sel.png").read_bytes()


@pytest.mark.parametrize(
    "address, code, message",
    [
        ("local:x", 2, "local:N"),
        ("local:0", 2, "1 to 256"),
        ("tcp://host name:1", 2, "not a scheduler address"),
        ("tcp://127.0.0.1:9", 1, "cannot reach the Dask scheduler"),
    ],
)
def test_bad_or_unreachable_schedulers_are_one_line_and_leave_nothing(
    tmp_path, monkeypatch, address, code, message
):
    from pafu_cli.dask import cluster as cl

    monkeypatch.setattr(cl, "CONNECT_TIMEOUT", "1s")
    src = _images(tmp_path / "in", 2, bad=False)
    r = CliRunner().invoke(
        main, ["upscale", "-s", "2", "--scheduler", address, str(src), str(tmp_path / "out")]
    )
    assert r.exit_code == code, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


def test_temporary_files_of_an_output_are_removed_and_no_others(tmp_path):
    from pafu_cli.io.images import remove_temp_files_of

    keep = [".b.pafu12-abc.part.png", "a.png", ".a.pafu12-abc.part.tif", ".ab.pafu3-x.part.png"]
    gone = [".a.pafu12-abc.part.png", ".a.pafu999-zz_9.part.png"]
    for name in keep + gone:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_temp_files_of(tmp_path / "a.png")
    assert sorted(p.name for p in removed) == sorted(gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_options_naming_files_are_made_absolute(tmp_path, monkeypatch):
    from pafu_cli.dask.cluster import _absolute
    from pafu_cli.jobs.guided import GuidedOptions
    from pafu_cli.jobs.upscale import UpscaleOptions

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.npz").write_bytes(b"")
    (tmp_path / "guides").mkdir()
    o = _absolute(UpscaleOptions(scale=2, model="m.npz", selection_map="sel/x.png"))
    assert o.model == str(tmp_path / "m.npz") and o.selection_map == str(tmp_path / "sel" / "x.png")
    assert _absolute(UpscaleOptions(scale=2, model="upscale_x2_fast")).model == "upscale_x2_fast"
    g = _absolute(GuidedOptions(guide="guides", method="jbu"))
    assert g.guide == str(tmp_path / "guides") and g.method == "jbu"


def test_a_window_of_tasks_in_flight(tmp_path, cluster, monkeypatch):
    """Files are submitted a window at a time (a huge batch is not a huge set of
    futures); a window of 2 still processes every file."""
    from pafu_cli.dask import cluster as cl

    c, client = cluster
    monkeypatch.setattr(cl, "IN_FLIGHT", 2)
    seen = []
    submit = distributed.Client.submit

    def counting(self, *args, **kw):
        seen.append(len(self.futures))
        return submit(self, *args, **kw)

    monkeypatch.setattr(distributed.Client, "submit", counting)
    src = _images(tmp_path / "in", 7, shape=(40, 50), bad=False)
    r = CliRunner().invoke(
        main, ["upscale", "-s", "2", "--scheduler", c.scheduler_address, str(src), str(tmp_path / "o")]
    )
    assert r.exit_code == 0, r.output
    assert len(seen) == 7 and max(seen) <= 3  # the window, and the finished one being recorded
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"im{i:02d}.png" for i in range(7)]


def _numba_threads_in_a_task():
    import numba

    from pafu_cli.dask.cluster import run_on_worker

    run_on_worker(lambda src, dst, opts: None, "in.png", "/nonexistent/out.png", None, True)
    return numba.get_num_threads()


def test_local_cluster_workers_split_the_cores():
    from pafu_cli.dask.cluster import Connection

    # Dask's default HTTP port taken (another cluster, a dashboard): the local cluster must start quietly
    busy = socket.socket()
    try:
        busy.bind(("", 8787))
        busy.listen()
    except OSError:
        pass  # already taken by someone else: the same situation
    with busy, Connection("local:2") as conn:
        assert len(conn.client.scheduler_info()["workers"]) == 2
        threads = conn.client.submit(_numba_threads_in_a_task, pure=False).result()
    assert threads == max(1, (os.cpu_count() or 1) // 2)
