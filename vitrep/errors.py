"""The user-facing error types of vitrep.

Every error a user can cause (a bad image, a bad option, weights that are not
on disk while offline, a checkpoint that does not fit) is a ``VitrepError``
whose message is one plain sentence.  The command line and the dashboard print
that sentence and nothing else; anything that is not a ``VitrepError`` is a
bug and keeps its traceback.
"""


class VitrepError(Exception):
    """Base class: its ``str`` is one sentence meant for the user.

    Where the way out depends on the interface (a command-line flag, a
    dashboard widget), the sentence's last clause comes from ``hints``:
    :meth:`say` gives the sentence in the words of ``"cli"`` or
    ``"dashboard"``; ``str`` is the sentence without a hint.
    """

    def __init__(self, message: str, hints: dict | None = None) -> None:
        super().__init__(message)
        self.hints = hints or {}

    def say(self, interface: str) -> str:
        base = str(self)
        hint = self.hints.get(interface)
        return f"{base[:-1] if base.endswith('.') else base}{hint}." if hint else base


class ImageError(VitrepError):
    """The input is not an image vitrep can use."""


class ConfigError(VitrepError):
    """An option, model name, layer or surgery spec is not valid."""


class WeightsUnavailable(VitrepError):
    """Trained weights are neither cached locally nor downloadable."""


class CheckpointError(VitrepError):
    """A local checkpoint file cannot be read or does not fit the model."""
