"""The CPU fast paths: packed oneDNN linear layers (``linear``) and ResNet-50's folded convolutions (``resnet``).

They change only float rounding, import nothing of vitrep's above
:mod:`vitrep.limits`, and are used by the model families they speed up.
"""
