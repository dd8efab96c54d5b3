"""``bench``'s CT part: the matrix-free projector against the stored sparse matrix it replaced, FBP and the unrolled
network at a scanner's 512², 180 angles, and the memory a reconstruction there takes.

- ``A`` and ``Aᵀ`` at 256², 60 angles (the lecture's) and 512², 180 angles, timed in turn with the sparse
  matrix-vector products where that matrix fits the old limit (256² × 180), each ratio the median of the rounds';
  the matrices' size beside the operator's (a few tables of the angles);
- FBP at 512², 180 angles; and, unless ``quick``, the unrolled network's CT checkpoint there, run in a fresh process
  so that its peak resident memory (``ru_maxrss``) is its own: torch, the model, one slice, its sinogram, FBP and
  the 36 data-step products.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from recon_demo.physics import ct_projector
from recon_demo.physics.ct import Radon, projection_angles

GEOMETRIES = ((256, 60), (512, 180))
SPARSE_LIMIT = 256 * 256 * 180  # size² × angles: the largest geometry the stored matrices were built for
Timer = Callable[[dict, int, torch.device], dict[str, list[float]]]  # bench._interleaved_ms


def projector_times(size: int, angles: int, repeats: int, timer: Timer) -> dict:
    """``A`` and ``Aᵀ`` of one image (ms), matrix-free and, where it fits, by the stored sparse matrices."""
    radon = Radon(size, angles)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, size, size, generator=g)
    y = torch.rand(1, 1, *radon.sinogram_shape, generator=g)
    calls = {"forward": lambda: radon.forward(x), "adjoint": lambda: radon.adjoint(y)}
    row: dict = {"size": size, "angles": angles, "operator_kb": round(radon.geometry.nbytes / 1024, 1)}
    if size * size * angles <= SPARSE_LIMIT:
        a, at = ct_projector.system_matrices(projection_angles(angles).numpy(), size, radon.bins)
        flat_x, flat_y = x.reshape(1, -1).T, y.reshape(1, -1).T
        calls |= {"sparse_forward": lambda: a @ flat_x, "sparse_adjoint": lambda: at @ flat_y}
        row["sparse_mb"] = round(2 * a.values().numel() * 8 / 1e6, 1)  # values and column indices, A and Aᵀ
    times = timer(calls, repeats, torch.device("cpu"))
    for name, values in times.items():
        row[f"{name}_ms"] = round(statistics.median(values), 2)
    for name in ("forward", "adjoint"):
        if f"sparse_{name}" in times:  # the median of the rounds' ratios: a shared CPU's speed drifts
            ratios = [t / s for t, s in zip(times[name], times[f"sparse_{name}"])]
            row[f"{name}_ratio_to_sparse"] = round(statistics.median(ratios), 3)
    return row


def _unrolled_at_512() -> dict:
    """In a fresh process: the unrolled network's CT checkpoint on one 512² slice at 180 angles (printed as JSON)."""
    from recon_demo.images import load_example, protocol_tensor
    from recon_demo.methods import registry
    from recon_demo.methods.ct import measure
    from recon_demo.metrics import psnr
    from recon_demo.serving.engine import Engine

    engine = Engine("cpu")
    radon = Radon(512, 180)
    x_true = protocol_tensor(load_example("camera"), 512, square=True)
    y_delta = measure(x_true, radon, 0.01, torch.Generator().manual_seed(0))
    (run,) = registry.build(["unrolled"], engine, "ct")  # its ct-any checkpoint
    run(y_delta, radon)  # warm-up: the kernels loaded, oneDNN's primitives chosen
    start = time.perf_counter()
    x_rec = run(y_delta, radon)
    seconds = time.perf_counter() - start
    return {"unrolled_s": round(seconds, 2), "unrolled_psnr": round(psnr(x_rec, x_true), 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # fmt: skip


def ct_section(quick: bool, repeats: int, timer: Timer) -> dict:
    """Every figure of the module's docstring, under ``"ct"``."""
    ct_projector.warm_up()  # compiled (or read from the cache) before anything is timed
    rows = [projector_times(size, angles, repeats, timer) for size, angles in GEOMETRIES]
    radon = Radon(512, 180)
    y = radon.forward(torch.rand(1, 1, 512, 512, generator=torch.Generator().manual_seed(1)))
    fbp_ms = statistics.median(timer({"fbp": lambda: radon.fbp(y)}, repeats, torch.device("cpu"))["fbp"])
    section = {"projector": rows, "fbp_512_180_ms": round(fbp_ms, 1), "unrolled_s": None, "unrolled_psnr": None,
               "peak_rss_mb": None}  # fmt: skip
    if not quick:
        code = "import json; from recon_demo.bench.ct import _unrolled_at_512; print(json.dumps(_unrolled_at_512()))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        if out.returncode == 0:
            section |= json.loads(out.stdout.strip().splitlines()[-1])
        else:
            section["unrolled_error"] = (out.stderr.strip().splitlines() or ["failed"])[-1]
    return section


def format_lines(ct: dict) -> list[str]:
    """The table's lines for the CT part."""
    lines = []
    for r in ct["projector"]:
        line = f"CT {r['size']}² × {r['angles']}: A {r['forward_ms']} ms, Aᵀ {r['adjoint_ms']} ms (matrix-free, {r['operator_kb']} kB)"
        if "sparse_forward_ms" in r:
            line += (f"; stored matrix {r['sparse_forward_ms']} / {r['sparse_adjoint_ms']} ms ({r['sparse_mb']} MB): "
                     f"{r['forward_ratio_to_sparse']}× / {r['adjoint_ratio_to_sparse']}×")  # fmt: skip
        lines.append(line)
    unrolled = "not run (--quick)" if ct["unrolled_s"] is None else (
        f"{ct['unrolled_s']} s ({ct['unrolled_psnr']} dB on camera), peak RSS {ct['peak_rss_mb']} MB")  # fmt: skip
    lines.append(f"CT 512² × 180: FBP {ct['fbp_512_180_ms']} ms; unrolled network {ct.get('unrolled_error', unrolled)}")
    return lines
