"""The descent, in the manner of lucent's ``optvis``: objectives, parameterisations, steps, a recorder, the loop.

``objectives`` (embedding match, class logit), ``param`` (the seeded pixel
start, the jitter canvas), ``steps`` (plain GD, normalised GD, Adam; the
schedules and the blur), ``record`` (curves, snapshots, progress), ``loop``
(the eager loop and its rows) and ``cudagraph`` (one captured step per
replay).  :mod:`vitrep.reconstruction` and :mod:`vitrep.generate` are recipes
over them.
"""
