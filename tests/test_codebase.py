"""Rules about the package's source, checked by parsing it (``ast``):

- no function takes more than 12 positional parameters (group them in a
  dataclass or make them keyword-only);
- every ``np.load`` passes ``allow_pickle=False`` (a model or data file must not
  run code);
- only ``pafu_cli/io/`` and ``pafu_cli/raw/`` import the file-format libraries
  (imageio, tifffile, rawpy).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pafu_cli"
MAX_POSITIONAL = 12
FORMAT_LIBRARIES = {"imageio", "tifffile", "rawpy"}
FORMAT_FOLDERS = ("io", "raw")


def _modules():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20, f"only {len(files)} modules found under {PACKAGE}"
    for p in files:
        yield p.relative_to(PACKAGE.parent).as_posix(), ast.parse(p.read_text(), filename=str(p))


def _positional_offenders(tree, where):
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            n = len(node.args.posonlyargs) + len(node.args.args)
            if n > MAX_POSITIONAL:
                name = getattr(node, "name", "<lambda>")
                out.append(f"{where}:{node.lineno} {name}() takes {n} positional parameters")
    return out


def _numpy_names(tree):
    """Names bound to the numpy module and to ``numpy.load`` in a module."""
    modules, loads = {"numpy"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "numpy":
                    modules.add(a.asname or "numpy")
        elif isinstance(node, ast.ImportFrom) and node.module == "numpy":
            for a in node.names:
                if a.name == "load":
                    loads.add(a.asname or "load")
    return modules, loads


def _np_load_offenders(tree, where):
    modules, loads = _numpy_names(tree)
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        is_load = (
            isinstance(f, ast.Attribute)
            and f.attr == "load"
            and isinstance(f.value, ast.Name)
            and f.value.id in modules
        ) or (isinstance(f, ast.Name) and f.id in loads)
        if not is_load:
            continue
        kw = {k.arg: k.value for k in node.keywords}
        v = kw.get("allow_pickle")
        if not (isinstance(v, ast.Constant) and v.value is False):
            out.append(f"{where}:{node.lineno} np.load without allow_pickle=False")
    return out


def _format_imports(tree, where):
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in FORMAT_LIBRARIES:
                out.append(f"{where}:{node.lineno} imports {name}")
    return out


def test_no_function_takes_more_than_12_positional_parameters():
    bad = [m for where, tree in _modules() for m in _positional_offenders(tree, where)]
    assert not bad, "\n".join(bad)


def test_every_np_load_refuses_pickles():
    bad = [m for where, tree in _modules() for m in _np_load_offenders(tree, where)]
    assert not bad, "\n".join(bad)


def test_only_io_and_raw_import_file_format_libraries():
    bad = [
        m
        for where, tree in _modules()
        if where.split("/")[1] not in FORMAT_FOLDERS
        for m in _format_imports(tree, where)
    ]
    assert not bad, "\n".join(bad)


# The checkers themselves, on small sources.


def test_the_checkers_find_what_they_look_for():
    src = """
import numpy as xp
from numpy import load as ld
from imageio import v3
import tifffile.tiff as t

def many(a, b, c, d, e, f, g, h, i, j, k, l, m, /, *rest, n=1, **kw):
    xp.load("a")
    xp.load("b", allow_pickle=True)
    ld("c", allow_pickle=0)
    xp.load("d", allow_pickle=False)

def fine(a, b, c, d, e, f, g, h, i, j, k, l, *, m, n):
    import rawpy
"""
    tree = ast.parse(src)
    assert _positional_offenders(tree, "x") == ["x:7 many() takes 13 positional parameters"]
    assert _np_load_offenders(tree, "x") == [f"x:{n} np.load without allow_pickle=False" for n in (8, 9, 10)]
    want = ["x:4 imports imageio", "x:5 imports tifffile.tiff", "x:14 imports rawpy"]
    assert _format_imports(tree, "x") == want
