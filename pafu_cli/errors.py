"""Exception tree of pafu: one root, converted to exit codes only at the CLI edge."""


class PafuError(Exception):
    """Root of every error pafu raises on purpose."""


class InputError(PafuError):
    """An input image or RAW file is unreadable, unsupported or empty."""


class ModelError(PafuError):
    """A model file is missing, malformed or does not fit the task."""


class OutputError(PafuError):
    """An output cannot be written (exists, unwritable folder, ...)."""
