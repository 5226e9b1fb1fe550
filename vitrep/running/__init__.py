"""Running: the disk memo, the device queue, runs and their chunks, grids, and the Ray executor.

``memo`` (diskcache, single flight, checksums) and ``queue`` (one computation
per device) are the floor; ``chunks`` plans batches under the memory budget;
``runs`` is "read it from the memo, else compute it, queued"; ``grid`` is a
sweep, a survey or a figure as cells; ``distributed`` runs them on Ray.
"""
