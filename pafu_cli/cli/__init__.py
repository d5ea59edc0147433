"""The ``pafu`` command line: one module per command, shared options, process tuning."""

from pafu_cli.cli.main import entry, main

__all__ = ["entry", "main"]
