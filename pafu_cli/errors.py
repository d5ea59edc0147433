"""Exception tree of pafu: one root, converted to exit codes only at the CLI edge."""


class PafuError(Exception):
    """Root of every error pafu raises on purpose."""


class InputError(PafuError):
    """An input image or RAW file is unreadable, unsupported or empty."""


class ModelError(PafuError):
    """A model file is missing, malformed or does not fit the task."""


class OutputError(PafuError):
    """An output cannot be written (exists, unwritable folder, ...)."""


class ConfigError(PafuError):
    """An environment setting (``PAFU_*``) is invalid."""


def one_line(text: str) -> str:
    """``text`` on one line: control characters (a newline in a file name, say) are
    shown as escapes, so an error stays one line whatever the names it quotes."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in str(text)
    )
