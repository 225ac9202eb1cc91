"""LSH banding: band ``i`` of a signature is the little-endian bytes of rows ``i*R .. (i+1)*R - 1``.

Two files are candidates when any (language, band index, band bytes) key matches; Spark groups on that key.
The byte layout is BigCode's (``min_hashes[start:end].tobytes()`` of uint32 on x86), fixed to little-endian so
keys do not depend on the machine.
"""

from __future__ import annotations

import numpy as np


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) array of ``rows * 4``-byte void scalars, one LSH key per band of each signature."""
    n = sigs.shape[0]
    packed = np.ascontiguousarray(sigs[:, : bands * rows], dtype="<u4")
    return packed.view(np.dtype((np.void, rows * 4))).reshape(n, bands)
