"""Models: the registry, weights, the shared pool, size estimates, taps, surgery and one adapter per family.

Floors, each importing only those below it: ``families/`` (what each kind
of network is: taps, paths, block forwards, components) -> ``surgery`` ->
``registry`` (specs and the hashable :class:`~vitrep.models.registry.ModelRef`)
-> ``weights`` (files, checkpoints, swaps, building) -> ``taps`` (paths from
image to layer, run as a prefix tree) -> ``sizes`` (memory estimates on the
meta device) -> ``pool`` (the shared, evicting model pool).  Import from the
module that owns a name.
"""
