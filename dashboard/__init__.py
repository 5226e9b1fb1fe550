"""The Streamlit side of vitrep: what the pages (``app_pages/``) share.

Pages stay thin (widgets -> config -> engine -> plots); all computation is in
the engine, ``vitrep``, which never imports Streamlit.  Every user error is
shown as its one sentence with ``st.error``.

- :mod:`dashboard.server`: the device, public mode and its limits, the shared memo, the sidebar;
- :mod:`dashboard.widgets`: the pickers (image, checkpoint, model, layer, surgery, schedule);
- :mod:`dashboard.live`: a run in progress (live bar, image, curves; queue note; Stop);
- :mod:`dashboard.plots`: curves, the verdict sentence, downloads;
- :mod:`dashboard.keys`: every session-state key.

Pages use it as ``import dashboard as ui``.
"""

from . import keys
from .live import Bar, Live, QueueNote, attempt, running, stop_button, stopped
from .plots import curves_figure, curves_figure_from, downloads, png_bytes, verdict
from .server import (DEFAULT_STEPS, MODEL_LABELS, ON_GPU, PUBLIC_MAX_STEPS, SPECS, error, memo, memo_counts,
                     over_budget, public_mode, queue_limit, sidebar, weights_home)
from .widgets import (checkpoint_input, image_picker, layer_picker, model_picker, schedule_inputs, session_folder,
                      session_output_folder, surgery_picker)

__all__ = ["Bar", "attempt", "DEFAULT_STEPS", "Live", "MODEL_LABELS", "ON_GPU", "PUBLIC_MAX_STEPS", "QueueNote", "SPECS",
           "checkpoint_input", "curves_figure", "curves_figure_from", "downloads", "error", "image_picker", "keys",
           "layer_picker", "memo", "memo_counts", "model_picker", "over_budget", "png_bytes", "public_mode", "queue_limit", "running",
           "schedule_inputs", "session_folder", "session_output_folder", "sidebar", "stop_button", "stopped",
           "surgery_picker", "verdict", "weights_home"]
