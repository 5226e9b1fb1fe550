"""vitrep: see what vision models keep of their input.

The engine behind the dashboard and the command line: a model registry
(:mod:`vitrep.models`), layer taps (:mod:`vitrep.models.taps`), component surgery
(:mod:`vitrep.models.surgery`), gradient-descent reconstruction
(:mod:`vitrep.reconstruction`); the one-call API
``vitrep.reconstruct(...)``, ``vitrep.figure(...)``, ``vitrep.ensemble(...)`` and ``vitrep.visualise(...)`` (:mod:`vitrep.api`) and a disk memo (:mod:`vitrep.running.memo`).  It never
imports streamlit.
"""

from .version import __version__  # noqa: F401  (a leaf: modules below import it from there)

__all__ = ["reconstruct", "figure", "ensemble", "visualise"]


def __getattr__(name: str):
    """The one-call API (:mod:`vitrep.api`), imported on first use so ``import vitrep`` stays light."""
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'vitrep' has no attribute {name!r}")
