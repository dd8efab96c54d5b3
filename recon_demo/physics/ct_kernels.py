"""The CPU kernels of ``ct_projector`` (numba): ``A x`` parallel over angles, ``Aᵀ y`` parallel over image rows.

Imported by ``ct_projector`` on first use only, so that starting the app does not import numba; compiled once and
cached on disk (``cache=True``). The weights are computed by one expression (``_row_weights``) for both directions,
which makes the back-projection the exact adjoint; see ``ct_projector`` for the geometry.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _row_weights(r, ct, st, s, d, inv, n, c0, idx, w_lo, w_mid, w_hi):
    """Image row ``r`` at one angle: each pixel's bin (relative to the centre bin) and its three weights."""
    s32, d32, inv32 = np.float32(s), np.float32(d), np.float32(inv)
    base = np.float32(-(r - c0) * st)
    ct32 = np.float32(ct)
    zero, half, one = np.float32(0.0), np.float32(0.5), np.float32(1.0)
    for c in range(n):
        p = np.float32(c - c0) * ct32 + base  # where the pixel centre lands, in bins from the centre bin
        m = np.floor(p + half)
        f = p - m
        a1 = max(s32 - (half + f), zero)
        b1 = max(d32 - (half + f), zero)
        a2 = max(s32 - (half - f), zero)
        b2 = max(d32 - (half - f), zero)
        lo = (a1 * a1 - b1 * b1) * inv32
        hi = (a2 * a2 - b2 * b2) * inv32
        w_lo[c] = lo
        w_hi[c] = hi
        w_mid[c] = one - lo - hi
        idx[c] = np.int32(m)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def project(x, cos, sin, s, d, inv, c0, centre_bin, leaders, partners, out):
    """``out[i, k, 1 + b] += A x[i]``: x (N, n, n), out (N, A, bins + 3) zeroed: guard bins, one below, two above.

    Each job is one ``leader`` angle θ and, when it has one, its ``partner`` π − θ, which sees pixel (r, 2·c0 − c)
    where θ sees (r, c): one row of weights (``n + 1`` of them, for both ranges of c) serves both, and the job
    writes both sinogram rows.
    """
    n_images, n, _ = x.shape
    n_leaders = leaders.shape[0]
    for job in numba.prange(n_images * n_leaders):
        i, k = job // n_leaders, leaders[job % n_leaders]
        j = partners[k]
        row = out[i, k]
        idx = np.empty(n + 1, np.int32)
        w_lo, w_mid, w_hi = np.empty(n + 1, np.float32), np.empty(n + 1, np.float32), np.empty(n + 1, np.float32)
        for r in range(n):
            _row_weights(r, cos[k], sin[k], s[k], d[k], inv[k], n + 1, c0, idx, w_lo, w_mid, w_hi)
            xr = x[i, r]
            for c in range(n):
                v, b = xr[c], idx[c] + centre_bin + 1
                row[b - 1] += v * w_lo[c]
                row[b] += v * w_mid[c]
                row[b + 1] += v * w_hi[c]
            if j >= 0:
                mirrored = out[i, j]
                for c in range(n):  # pixel c at π − θ lands where pixel 2·c0 − c lands at θ
                    v, m = xr[c], 2 * c0 - c
                    b = idx[m] + centre_bin + 1
                    mirrored[b - 1] += v * w_lo[m]
                    mirrored[b] += v * w_mid[m]
                    mirrored[b + 1] += v * w_hi[m]
    return out


@numba.njit(parallel=True, cache=True, error_model="numpy")
def backproject(y, cos, sin, s, d, inv, c0, centre_bin, leaders, partners, out):
    """``out[i] += Aᵀ y[i]``: y (N, A, bins + 3) with zero guard bins, out (N, n, n) zeroed; angles paired as in
    ``project``."""
    n_images = y.shape[0]
    n = out.shape[1]
    for job in numba.prange(n_images * n):  # each job writes its own image row
        i, r = job // n, job % n
        orow = out[i, r]
        idx = np.empty(n + 1, np.int32)
        w_lo, w_mid, w_hi = np.empty(n + 1, np.float32), np.empty(n + 1, np.float32), np.empty(n + 1, np.float32)
        for k in leaders:
            _row_weights(r, cos[k], sin[k], s[k], d[k], inv[k], n + 1, c0, idx, w_lo, w_mid, w_hi)
            yr = y[i, k]
            for c in range(n):
                b = idx[c] + centre_bin + 1
                orow[c] += yr[b - 1] * w_lo[c] + yr[b] * w_mid[c] + yr[b + 1] * w_hi[c]
            j = partners[k]
            if j >= 0:
                yj = y[i, j]
                for c in range(n):
                    m = 2 * c0 - c
                    b = idx[m] + centre_bin + 1
                    orow[c] += yj[b - 1] * w_lo[m] + yj[b] * w_mid[m] + yj[b + 1] * w_hi[m]
    return out
