"""Every ``st.session_state`` key the dashboard uses, named in one place.

Widget keys are made from a page prefix (``rc``, ``sw``, ``ab``, ``pr``,
``cl``, ``fi``, ``co``) and the widget's name, e.g. ``rc_model``; the keys below are
the state the pages keep between reruns.
"""

RC_RESULT = "rc_result"  # Reconstruct: the last result shown
RC_IMAGE_NAME = "rc_image_name"  # Reconstruct: the name of its image
RC_PREFILL = "rc_prefill"  # a figure's panel opened in Reconstruct: the widget values to fill in
SW_RESULT = "sw_result"  # Layer sweep: [(model, tap, result)]
AB_RESULT = "ab_result"  # Ablation survey: [(label, result)]
EN_PREFILL = "en_prefill"  # Ensemble: a layer to open with, from the conditioning page (model, layer, remove)
PR_RESULT = "pr_result"  # Figures: (preset name, output folder, summary)
CL_RESULT = "cl_result"  # Class images: the generated result
CO_RESULT = "co_result"  # Conditioning: (labels, spectra, what was measured)
LAST_PROGRESS = "_last_progress"  # the latest progress of a run, shown when it is stopped
SESSION_FOLDER = "_vitrep_folder"  # this browser session's upload folder
SESSION_OUTPUT = "_vitrep_outputs"  # this browser session's output folder (dashboard.session_output_folder)
