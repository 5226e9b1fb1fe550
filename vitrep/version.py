"""The package version: a leaf every module may import (``vitrep.__version__`` hands it on)."""

__version__ = "0.1.0"
