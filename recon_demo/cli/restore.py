"""Restoring a photograph that arrived already blurred: no ground truth, no kernel, a scene past its frame, colour.

``python -m recon_demo restore IMAGE… --out DIR``: each picture read at its own size (``recon_demo.picture``), every
input checked before any work, then restored by ``lab.restore.Restorer`` (the kernel estimated unless ``--kernel``
gives it, the noise unless ``--noise`` does) and each method's result written as ``DIR/<stem>__<method>.png``; a
line per image, or JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recon_demo.checkpoints import CheckpointError
from recon_demo.errors import RestoreError, UnknownName
from recon_demo.lab.restore import COLOUR_MODES, DEFAULT_METHODS, Restorer, parse_kernel, parse_methods, parse_noise, psf_kernel
from recon_demo.physics.blur import OperatorSpec
from recon_demo.physics.kernels import text_forms
from recon_demo.picture import read_picture, write_picture
from recon_demo.progress import CLIProgress
from recon_demo.serving.engine import Engine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="pictures that are already blurred (the measurements)")
    parser.add_argument("--out", required=True, help="folder for DIR/<stem>__<method>.png")
    parser.add_argument("--methods", help=f"comma list of networks and baselines (default {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--kernel", default="auto", help=f"auto (estimate it, the default), a blur ({text_forms()}; a "
                        "motion's style is centered unless said), or a PSF image (any size, normalised to sum 1)")
    parser.add_argument("--noise", default="auto", help="auto (estimate it) or the relative noise level δ")
    parser.add_argument("--regime", default="general", choices=("course", "general"),
                        help="which shipped weights the networks load (default general: trained on many blurs)")
    parser.add_argument("--colour", default="channels", choices=COLOUR_MODES,
                        help="a colour picture: each channel restored (default) or the luminance alone, chroma kept")
    parser.add_argument("--format", default="text", choices=("text", "json"), help="a line per image, or JSON")
    parser.add_argument("--device", help="cpu, cuda, mps (default: RECON_DEVICE or the best available)")


def main(args: argparse.Namespace) -> int:
    try:
        methods = parse_methods(args.methods)
        kernel = parse_kernel(args.kernel)
        noise = parse_noise(args.noise)
        out_dir = Path(args.out)
        if out_dir.exists() and not out_dir.is_dir():
            raise RestoreError(f"--out {args.out!r} is a file, not a folder")
        pictures = [(Path(p), read_picture(p)) for p in args.images]  # every input checked before any work
        psf = psf_kernel(kernel, pictures[0][1].grey.shape) if isinstance(kernel, Path) else None
        side = psf.shape[-1] if psf is not None else kernel.kernel_size if isinstance(kernel, OperatorSpec) else 0
        for path, picture in pictures:
            if side > min(picture.grey.shape):
                raise RestoreError(f"the kernel ({side}×{side}) is larger than {path} "
                                   f"({picture.grey.shape[1]}×{picture.grey.shape[0]})")  # fmt: skip
        restorer = Restorer(Engine(args.device))
        out_dir.mkdir(parents=True, exist_ok=True)
    except (ValueError, UnknownName, CheckpointError, OSError) as err:  # RestoreError is a ValueError
        print(f"restore: {err}", file=sys.stderr)
        return 2
    answers = []
    progress = CLIProgress("restore", args.quiet)
    for path, picture in pictures:
        with progress.phase(f"{path.name}", len(methods)) as phase:
            try:
                result = restorer.restore(picture, methods, psf if psf is not None else kernel, noise, args.regime,
                                          args.colour, phase)  # fmt: skip
            except (RestoreError, ValueError) as err:
                print(f"restore: {path}: {err}", file=sys.stderr)
                return 2
        files = {}
        for name, pixels in result.outputs.items():
            files[name] = str(out_dir / f"{path.stem}__{name}.png")
            write_picture(Path(files[name]), pixels)
        answers.append({
            "input": str(path),
            "kernel": {"file": str(kernel)} if psf is not None else result.kernel_dict(),
            "noise": round(result.noise, 5),
            "colour": result.colour_mode,
            "outputs": files,
            "ms": {k: round(v, 1) for k, v in result.ms.items()},
            "dc": {k: round(v, 5) for k, v in result.dc.items()},
            "errors": result.errors,
        })  # fmt: skip
        if args.format == "text":
            what = "the PSF " + str(kernel) if psf is not None else (result.spec.describe() if result.spec else "")
            conf = result.kernel_dict().get("confidence")
            print(f"{path}: {what}" + (f" (confidence {conf:.0%})" if conf is not None else "") +
                  f", δ {result.noise:.3f}; " + ", ".join(f"{n} → {f}" for n, f in files.items()))  # fmt: skip
    if args.format == "json":
        print(json.dumps({"images": answers}, indent=1))
    return 0
