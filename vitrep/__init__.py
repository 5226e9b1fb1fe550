"""vitrep: see what vision models keep of their input.

The engine behind the dashboard and the command line: a model registry
(:mod:`vitrep.models`), layer taps (:mod:`vitrep.models.taps`), component surgery
(:mod:`vitrep.models.surgery`), gradient-descent reconstruction
(:mod:`vitrep.reconstruct`) and a disk memo (:mod:`vitrep.running.memo`).  It never
imports streamlit.
"""

__version__ = "0.1.0"
