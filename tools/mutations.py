"""Mutation check of the tests that guard what ships: apply each mutation to a
temporary copy of the repository and show which tests fail.

    python tools/mutations.py                 # all mutations, the guard tests
    python tools/mutations.py --old-suite     # also HEAD's other test files, for contrast
    python tools/mutations.py bank_halved kernels_swapped   # some mutations only

The copy is ``git archive HEAD`` plus the working tree's versions of the guard
files (GUARD_FILES); the repository's own files are never touched. The shipped
models are put where an installed package has them (``pafu_cli/shipped_models``
in the copy), and a pytest plugin prints which ``pafu_cli`` and which model folder
each run used: a run that did not use the copy's is refused.

Model mutations rewrite the ``.npz`` arrays of the ``pafu`` family's files directly
(every format version keeps the ``bank``, ``kernel_sizes``, ``selector_layers`` and
``selector_w{i}``/``selector_b{i}`` keys; other families' files, without a ``bank``,
are left as they are); metric mutations edit ``pafu_cli/evaluation`` in the copy.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GUARD_FILES = [
    "tests/conftest.py",
    "tests/data",
    "tests/test_shipped_models.py",
    "tests/test_quality.py",
    "tests/test_metrics.py",
    "tests/test_codebase.py",
    "tests/test_require_shared.py",
    "tools/make_goldens.py",
]
GUARD_TESTS = ["tests/test_shipped_models.py", "tests/test_quality.py", "tests/test_metrics.py"]

PROBE_PLUGIN = """
def pytest_terminal_summary(terminalreporter):
    import pafu_cli
    from pafu_cli.models import models_dir

    terminalreporter.write_line(f"MUTATION-PROBE pafu_cli={pafu_cli.__file__}")
    terminalreporter.write_line(f"MUTATION-PROBE models={models_dir()}")
"""


# --- model mutations -----------------------------------------------------------------------------


def _rewrite(path: Path, change) -> None:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if "bank" not in arrays:  # not a pafu kernel bank (a pac guided upsampler): no mutation applies
        return
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _last_layer(a):
    return int(a["selector_layers"]) - 1


def bank_halved(a):
    """Only the first half of the kernels kept (bank, sizes, the selector's logits)."""
    n = a["bank"].shape[0] // 2
    last = _last_layer(a)
    a["bank"] = a["bank"][:n].copy()
    a["kernel_sizes"] = a["kernel_sizes"][:n].copy()
    a[f"selector_w{last}"] = a[f"selector_w{last}"][:n].copy()
    a[f"selector_b{last}"] = a[f"selector_b{last}"][:n].copy()


def bank_scaled(a):
    """Every kernel's taps multiplied by 0.5."""
    a["bank"] = (a["bank"] * np.float32(0.5)).astype(np.float32)


def kernels_swapped(a):
    """Kernel 0 exchanged with the first kernel that differs from it (some banks
    hold several all-zero kernels); the selector still picks by index."""
    bank = a["bank"]
    j = next(j for j in range(1, len(bank)) if not np.array_equal(bank[j], bank[0]))
    order = np.arange(bank.shape[0])
    order[[0, j]] = [j, 0]
    a["bank"] = a["bank"][order].copy()
    a["kernel_sizes"] = a["kernel_sizes"][order].copy()


def _perturb(rel):
    def change(a):
        w = a["selector_w0"].copy()
        w[0, 0, w.shape[2] // 2, w.shape[3] // 2] += np.float32(rel * np.abs(w).max())
        a["selector_w0"] = w

    change.__doc__ = (
        f"One weight of the first selector layer (output 0, input 0, centre tap) moved by "
        f"{rel:g} x the layer's largest |weight|."
    )
    return change


# --- source mutations ----------------------------------------------------------------------------

SOURCE_MUTATIONS = {
    "cpsnr_protocol_border_11": (
        "The demosaick protocol scores CPSNR with border 11 instead of 10.",
        "pafu_cli/evaluation/protocols.py",
        r"cpsnr\(out8, im, 10\)",
        "cpsnr(out8, im, 11)",
    ),
    "cpsnr_convention_moved": (
        "cpsnr drops b rows/columns on every side instead of MATLAB's b - 1 at the top/left.",
        "pafu_cli/evaluation/metrics.py",
        r"slice\(border - 1, -border\), slice\(border - 1, -border\)",
        "slice(border, -border), slice(border, -border)",
    ),
    "cpsnr_default_border_11": (
        "cpsnr's default border 11 instead of 10.",
        "pafu_cli/evaluation/metrics.py",
        r"border: int = 10",
        "border: int = 11",
    ),
    "y_psnr_protocol_shave_plus_1": (
        "The SR protocol shaves s + 1 pixels instead of s.",
        "pafu_cli/evaluation/protocols.py",
        r"(out, _ = upscale_array\(lr, scale, m, ensemble=ensemble\)\n\s+"
        r"scores\[name\] = y_psnr\(out, hr\.astype\(np\.float64\) / 255, )scale,",
        r"\1scale + 1,",
    ),
    "y_psnr_shave_plus_1": (
        "y_psnr shaves shave + 1 pixels.",
        "pafu_cli/evaluation/metrics.py",
        r"a\[shave:-shave, shave:-shave\], b\[shave:-shave, shave:-shave\]",
        "a[shave + 1 : -shave - 1, shave + 1 : -shave - 1], "
        "b[shave + 1 : -shave - 1, shave + 1 : -shave - 1]",
    ),
}

MODEL_MUTATIONS = {
    "bank_halved": bank_halved,
    "bank_scaled_by_half": bank_scaled,
    "kernels_swapped": kernels_swapped,
    "selector_weight_10pct": _perturb(0.1),
    "selector_weight_1pct": _perturb(0.01),
}


# --- the copy and the runs -----------------------------------------------------------------------


def make_copy(tmp: Path) -> None:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
    for rel in GUARD_FILES:
        src, dst = REPO / rel, tmp / rel
        if src.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    # Where an installed package keeps its models (package_dir pafu_cli.shipped_models = models):
    # found before the editable install's finder, which points at the repository's own models/.
    shutil.copytree(tmp / "models", tmp / "pafu_cli" / "shipped_models")
    (tmp / "_mutation_probe.py").write_text(PROBE_PLUGIN)


def env_for(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tmp)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("PAFU_SHARED", str(REPO.parent / "shared"))
    return env


def run_tests(tmp: Path, files, marks="not slow") -> tuple:
    """(failed test ids, passed count, summary line, seconds) of one pytest run in the copy."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-p", "_mutation_probe"]
    cmd += ["-m", marks, *files]
    t0 = time.time()
    r = subprocess.run(cmd, cwd=tmp, env=env_for(tmp), capture_output=True, text=True)
    out = r.stdout + r.stderr
    used = dict(re.findall(r"^MUTATION-PROBE (\w+)=(.*)$", out, re.M))
    for what in ("pafu_cli", "models"):
        if not used.get(what, "").startswith(str(tmp)):
            sys.exit(f"the run did not use the copy's {what} ({used.get(what)}):\n{out[-3000:]}")
    failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)))
    summary = [ln for ln in out.splitlines() if re.match(r"^=*\s*\d+ (passed|failed|error)", ln.strip("= "))]
    return failed, summary[-1].strip("= ") if summary else out[-500:], time.time() - t0


def models_in(tmp: Path) -> Path:
    code = "from pafu_cli.models import models_dir; print(models_dir())"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp, env=env_for(tmp), capture_output=True, text=True, check=True
    )
    where = Path(r.stdout.strip())
    if not str(where).startswith(str(tmp)):
        sys.exit(f"pafu_cli in the copy finds its models in {where}, not in the copy")
    return where


def apply_source(tmp: Path, name: str) -> None:
    _, rel, pattern, repl = SOURCE_MUTATIONS[name]
    path = tmp / rel
    text, n = re.subn(pattern, repl, path.read_text())
    if n != 1:
        sys.exit(f"{name}: the pattern matches {n} times in {rel} (the code moved?); fix tools/mutations.py")
    path.write_text(text)


def main(argv=None) -> int:
    names = list(MODEL_MUTATIONS) + list(SOURCE_MUTATIONS)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mutations", nargs="*", help=f"default: all of {', '.join(names)}".replace("%", "%%"))
    ap.add_argument("--old-suite", action="store_true", help="also run HEAD's other test files")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.mutations) - set(names))
    if unknown:
        ap.error(f"unknown mutation(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    chosen = args.mutations or names

    tmp = Path(tempfile.mkdtemp(prefix="pafu-mutations-"))
    try:
        make_copy(tmp)
        mdir = models_in(tmp)
        pristine = tmp.parent / (tmp.name + "-pristine")
        shutil.copytree(mdir, pristine / "models")
        shutil.copytree(tmp / "pafu_cli" / "evaluation", pristine / "evaluation")
        old_suite = sorted(
            p.relative_to(tmp).as_posix()
            for p in (tmp / "tests").glob("test_*.py")
            if p.relative_to(tmp).as_posix() not in GUARD_FILES
        )
        print(f"copy: {tmp} (HEAD + the guard files of the working tree); models: {mdir}")
        failed, summary, secs = run_tests(tmp, GUARD_TESTS)
        print(f"\nno mutation: guard tests: {summary} ({secs:.0f} s)")
        if failed:
            print("  the guard tests fail without any mutation: " + ", ".join(failed))
            return 1
        for name in chosen:
            shutil.rmtree(mdir)
            shutil.copytree(pristine / "models", mdir)
            shutil.rmtree(tmp / "pafu_cli" / "evaluation")
            shutil.copytree(pristine / "evaluation", tmp / "pafu_cli" / "evaluation")
            if name in MODEL_MUTATIONS:
                doc = " ".join(MODEL_MUTATIONS[name].__doc__.split())
                for p in sorted(mdir.glob("*.npz")):
                    _rewrite(p, MODEL_MUTATIONS[name])
            else:
                doc = SOURCE_MUTATIONS[name][0]
                apply_source(tmp, name)
            failed, summary, secs = run_tests(tmp, GUARD_TESTS)
            print(f"\n## {name}: {doc}\nguard tests: {summary} ({secs:.0f} s)")
            for t in failed:
                print(f"  FAILED {t}")
            if args.old_suite:
                failed, summary, secs = run_tests(tmp, old_suite)
                print(f"HEAD's other tests ({len(old_suite)} files): {summary} ({secs:.0f} s)")
                for t in failed:
                    print(f"  FAILED {t}")
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(tmp.parent / (tmp.name + "-pristine"), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
