from pafu_cli.cli.main import entry

entry()
