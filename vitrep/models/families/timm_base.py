"""What the adapters of timm's classes share: building a timm model by name, and an adapter made for one model.

Each timm class vitrep can take apart has one adapter class
(:mod:`.timm_vit`, :mod:`.timm_mixers`, :mod:`.timm_conv`); an instance of it
serves one model (``timm:NAME``, :func:`vitrep.models.families.timm_models.timm_spec`)
or, under a short name, a listed family (``deit_tiny``, :func:`alias`).
"""

from __future__ import annotations

from torch import nn

from .base import ModelSpec, TrainedSource


def build(arch: str, **kw) -> nn.Module:
    """timm's ``arch`` (``NAME`` or ``NAME.TAG``), untrained: the builder of every timm model's spec."""
    import timm

    return timm.create_model(arch, pretrained=False, **kw)


def alias(name: str, arch: str, family: str, label: str, description: str, size: int = 224,
          depth: int = 12) -> ModelSpec:
    """A short name for timm's ``arch`` (``NAME.TAG``): built, normalised and trained as ``timm:NAME`` is.

    What :func:`~vitrep.models.families.timm_models.timm_spec` reads off the built model (input size, depth,
    timm's ImageNet normalisation, the Hugging Face repository) is written here, so that listing the models
    builds nothing; tests/test_families.py checks that the two agree.
    """
    from functools import partial

    return ModelSpec(name, family, size, description, partial(build, arch.split(".")[0]),
                     trained=TrainedSource("timm", f"timm/{arch}"), depth=depth, label=label)


class PerModel:
    """An adapter of a timm class: made for one model (its name is the model's, its layout read off the module)
    or as a listed family serving short names (:meth:`family`)."""

    @classmethod
    def for_model(cls, name: str, module: nn.Module):
        a = cls()
        a.name = name
        a.setup(module)
        return a

    @classmethod
    def family(cls, name: str, *specs: ModelSpec):
        """The adapter as a family of the model menus, serving ``specs`` (made by :func:`alias`)."""
        a = cls()
        a.name = name
        a.specs = specs
        return a

    def setup(self, module: nn.Module) -> None:
        pass

    def builder_kwargs(self, ref) -> dict:
        spec = ref.spec
        return {"img_size": ref.size} if ref.size not in (None, spec.size) else {}
