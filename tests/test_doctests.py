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
