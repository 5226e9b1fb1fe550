"""Unit visualisation: what a channel, an MLP unit, an attention head or a direction of any model responds to.

- :mod:`.objectives`: what is maximised, composable (``a + b``, ``2 * a``, ``a * b``) and written as text;
- :mod:`.sites`: the activations those objectives read, in one prefix-sharing forward pass;
- :mod:`.param`: the pixel and Fourier (colour-decorrelated) images and the robustness transforms;
- :mod:`.run`: the config, the descent, the result, the memo and the top units of an image.

docs/units.md explains each objective and compares the tool with lucent and Ghiasi et al.
"""

from .objectives import Objective, parse, term
from .run import UnitsConfig, Units, make_units_config, run_units, top_units, unit_range, visualise

__all__ = ["Objective", "parse", "term", "UnitsConfig", "Units", "make_units_config", "run_units", "top_units",
           "unit_range", "visualise"]
