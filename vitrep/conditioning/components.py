"""Which of a model's components a comparison of spectra names, asked of the model's adapter.

The write-up names the parts of a ViT block (``attention``, ``ln_1``,
``mlp``); every family's adapter maps those names onto its own components
(``component_aliases``: a Mixer's ``token_mixing``, an attention-free ViT's
``token_mlp``).  Nothing here knows a family: it asks the adapter.
"""

from __future__ import annotations

from typing import Optional

# The write-up's names for the parts its conditioning claim is about, in the order a comparison shows them.
WRITE_UP_PARTS = ("attention", "ln_1", "mlp")


def _own(adapter, name: str) -> Optional[str]:
    """The adapter's component for one of the write-up's names, or None where the model has no such part."""
    c = adapter.canonical_component(name)
    return c if c in adapter.components else None


def attention_component(adapter) -> Optional[str]:
    """The component that mixes tokens (the write-up's self-attention) in this model, or None (a ResNet)."""
    return _own(adapter, "attention")


def compared_components(adapter) -> list[str]:
    """The components a comparison removes by default: the model's own names for the write-up's parts."""
    return list(dict.fromkeys(c for c in (_own(adapter, n) for n in WRITE_UP_PARTS) if c))
