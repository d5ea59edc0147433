"""The examples in the docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import pafu_cli


def _modules():
    names = []
    for info in pkgutil.walk_packages(pafu_cli.__path__, "pafu_cli."):
        if ".training" in info.name or info.name.endswith("__main__"):
            continue  # training needs torch; __main__ runs the command line
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """README's API block runs as written (from the repository root, where its
    model path exists), and the dask example equals the plain call on a corner."""
    import re
    from pathlib import Path

    import numpy as np

    pytest.importorskip("dask")
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    blocks = re.findall(r"```python\n(.*?)```", (repo / "README.md").read_text(), re.S)
    assert blocks
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    assert scope["rgb"].shape == (64, 96, 3) and scope["up"].shape == (480, 640)
    corner = scope["lazy"][:40, :40].compute()
    assert corner.shape == (40, 40, 3) and corner.dtype == np.uint8 and not corner.any()
