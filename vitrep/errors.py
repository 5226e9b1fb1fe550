"""The user-facing error types of vitrep.

Every error a user can cause (a bad image, a bad option, weights that are not
on disk while offline, a checkpoint that does not fit) is a ``VitrepError``
whose message is one plain sentence.  The command line and the dashboard print
that sentence and nothing else; anything that is not a ``VitrepError`` is a
bug and keeps its traceback.
"""


class VitrepError(Exception):
    """Base class: its ``str`` is one sentence meant for the user."""


class ImageError(VitrepError):
    """The input is not an image vitrep can use."""


class ConfigError(VitrepError):
    """An option, model name, layer or surgery spec is not valid."""


class WeightsUnavailable(VitrepError):
    """Trained weights are neither cached locally nor downloadable."""


class CheckpointError(VitrepError):
    """A local checkpoint file cannot be read or does not fit the model."""
