"""``python -m pafu_cli``: the ``pafu`` command."""

from pafu_cli.cli.main import entry

entry()
