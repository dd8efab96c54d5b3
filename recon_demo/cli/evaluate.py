"""``python -m recon_demo evaluate``: the lecture's evaluation protocol, exactly.

The flags map onto ``evaluate.EvalConfig`` (deblurring), ``evaluate.CTEvalConfig`` (``--task ct``) or
``evaluate.blind.BlindConfig`` (``--blind``); ``--off-course`` runs the five settings of the general regime and
``--bf16-check`` each shipped checkpoint in float32 and bf16. Each is checked before any work (a bad value: one line
and exit status 2); the result is printed as the lecture's table, the README's Markdown or JSON
(``evaluate.formats``). The protocol itself is the ``evaluate`` package's docstring.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from recon_demo import datasets
from recon_demo.checkpoints import CT_ANY, REGIMES, CheckpointError, Manifest
from recon_demo.evaluate.blind import (
    BLIND_KINDS,
    DEFAULT_METHODS,
    MEDICAL_TUNING_SET,
    TUNING_SET,
    BlindConfig,
    format_blind,
    run_blind,
)
from recon_demo.evaluate.blind import SETS as BLIND_SETS
from recon_demo.evaluate.formats import FORMATS, format_off_course_markdown, format_table
from recon_demo.evaluate.precision import bf16_check, format_bf16_check
from recon_demo.evaluate.protocol import (
    MAX_SIZE,
    OFF_COURSE,
    CTEvalConfig,
    EvalConfig,
    parse_baselines,
    parse_models,
    run_ct_evaluation,
    run_evaluation,
)
from recon_demo.methods import ct as ct_methods
from recon_demo.methods.blur import BASELINES
from recon_demo.models import list_models
from recon_demo.physics import spec
from recon_demo.physics.blur import LECTURE_OPERATOR, OperatorSpec
from recon_demo.physics.ct import MAX_SIZE as CT_MAX_SIZE
from recon_demo.physics.ct import CTSpec
from recon_demo.progress import CLIProgress
from recon_demo.serving.engine import PRECISIONS
from recon_demo.validation import check_number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="deblur", choices=("deblur", "ct"), help="deblur (default) or ct (sinograms)")
    parser.add_argument("--models", help="comma list: registry names (shipped weights), NAME=PATH for a checkpoint, or 'all'")
    parser.add_argument("--regime", default="course", choices=REGIMES, help="which shipped checkpoints plain names select")
    parser.add_argument("--images", help=f"folder of images, or '{datasets.HELD_OUT_MEDICAL}' (real CT and MR slices, "
                        f"needs {datasets.MEDICAL_INSTALL}); default: the held-out package images")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--size", type=int, default=256, help="Resize(size) of the shorter side (default 256)")
    spec.add_arguments(parser, OperatorSpec, LECTURE_OPERATOR)  # --blur (or --operator), --kernel-size, --angle, …
    parser.add_argument("--noise", type=float, default=0.01, help="relative noise level δ (default 0.01)")
    parser.add_argument("--seed", type=int, default=123, help="torch.manual_seed before the loop (default 123)")
    parser.add_argument("--baselines", help=f"comma list of {', '.join(BASELINES)} (ct: {', '.join(ct_methods.CT_BASELINES)})")
    spec.add_arguments(parser.add_argument_group("ct (--task ct)"), CTSpec)  # --angles, --fbp-filter (--size: above)
    parser.add_argument("--lpips", action="store_true", help="also compute LPIPS (AlexNet)")
    parser.add_argument("--off-course", action="store_true",
                        help="run at the five off-course settings of the general regime instead of --operator/--noise")
    blind = parser.add_argument_group("blind (--blind)")
    blind.add_argument("--blind", action="store_true",
                       help="the blind benchmark: held-out images blurred with real edges by random motion, Gaussian and "
                       "shake kernels; the kernel estimated; each method handed the estimate and the true K")
    blind.add_argument("--blind-sets", default=",".join(BLIND_SETS),
                       help=f"comma list of {', '.join(BLIND_SETS)} (held out), or {TUNING_SET} and {MEDICAL_TUNING_SET} "
                       "(the training images the estimator was tuned on)")
    blind.add_argument("--blind-kinds", default=",".join(BLIND_KINDS), help=f"comma list of {', '.join(BLIND_KINDS)}")
    blind.add_argument("--per-image", type=int, default=2, help="measurements per image and kind (default 2)")
    parser.add_argument("--device", help="cpu, cuda, mps (default: RECON_DEVICE or the best available)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="fp32 (default): every network in float32, the lecture's and the manifest's figures on every "
                        "machine; auto: each network as the app runs it (bf16 where bf16 is native, for the checkpoints "
                        "whose PSNR it moves by at most 0.05 dB); bf16: every network in bf16, even where it is emulated")
    parser.add_argument("--bf16-check", action="store_true",
                        help="each shipped deblurring checkpoint's held-out PSNR in float32 and in bf16, and whether the "
                        "app may run it in bf16 where bf16 is native (a change of at most 0.05 dB)")
    parser.add_argument("--write", action="store_true", help="with --bf16-check: record the changes in weights/manifest.json")
    parser.add_argument("--format", default="table", choices=("table", "markdown", "json"),
                        help="the lecture's table, the README's (with parameters and ms per 256² image), or JSON")


def _check_protocol_args(args: argparse.Namespace, max_size: int, task: str = "") -> None:
    check_number(f"--size{task}", args.size, 8, max_size, integer=True)  # task: " for ct"
    if args.limit is not None:
        check_number("--limit", args.limit, 1, 10**9, integer=True)
    check_number("--noise", args.noise, 0, 10)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    _check_protocol_args(args, MAX_SIZE)
    operator = spec.from_args(OperatorSpec, args).validated()  # the operator checked before any work
    shipped = Manifest.load().shipped(args.regime)
    asks_all = _asks_all(args.models)
    if asks_all and not shipped and not args.baselines:
        raise ValueError(f"no {args.regime} weights are shipped yet, so 'all' selects no model")
    return EvalConfig(
        models=parse_models(args.models, shipped),
        baselines=parse_baselines(args.baselines),
        size=args.size,
        operator=operator,
        regime=args.regime,
        unshipped=[name for name in list_models() if name not in shipped] if asks_all else [],
        **_protocol_values(args),
    )


def _protocol_values(args: argparse.Namespace) -> dict:
    """The flags both tasks' protocols read the same way."""
    names = ("images", "limit", "noise", "seed", "lpips", "device", "precision")
    return {name: getattr(args, name) for name in names}


def _asks_all(models: str | None) -> bool:
    """Whether ``--models`` names "all" as one of its items."""
    return "all" in [s.strip() for s in (models or "").split(",")]


def ct_config_from_args(args: argparse.Namespace) -> CTEvalConfig:
    """The CT evaluation the flags describe (``--task ct``); the blur's flags are ignored."""
    _check_protocol_args(args, CT_MAX_SIZE, " for ct")
    ct_spec = spec.from_args(CTSpec, args)  # the geometry and window checked before any work
    return CTEvalConfig(
        models=ct_methods.parse_models(args.models, Manifest.load().shipped(CT_ANY) if _asks_all(args.models) else []),
        baselines=parse_baselines(args.baselines, ct_methods.CT_BASELINES, "CT baseline"),
        spec=ct_spec,
        **_protocol_values(args),
    )


def blind_config_from_args(args: argparse.Namespace) -> BlindConfig:
    """The blind benchmark the flags describe: ``--models`` and ``--baselines`` (default: the unrolled network,
    the general UNet and TV), ``--blind-sets``, ``--blind-kinds``, ``--per-image``, ``--size``, ``--seed``, ``--limit``."""
    check_number("--per-image", args.per_image, 1, 1000, integer=True)
    check_number("--size", args.size, 32, MAX_SIZE, integer=True)
    sets, kinds = _choices("--blind-sets", args.blind_sets, (*BLIND_SETS, TUNING_SET, MEDICAL_TUNING_SET)), _choices("--blind-kinds", args.blind_kinds, BLIND_KINDS)
    if args.limit is not None:
        check_number("--limit", args.limit, 1, 10**9, integer=True)
    models = parse_models(args.models)
    if any(path for _, path in models):
        raise ValueError("--blind runs shipped weights by name (the general regime's), not NAME=PATH checkpoints")
    methods = [name for name, _ in models] + parse_baselines(args.baselines)
    return BlindConfig(methods=methods or list(DEFAULT_METHODS), sets=sets, kinds=kinds, per_image=args.per_image,
                       size=args.size, seed=args.seed, limit=args.limit, device=args.device)  # fmt: skip


def _choices(flag: str, value: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in items if s not in allowed]
    if unknown or not items:
        raise ValueError(f"{flag} takes a comma list of {', '.join(allowed)}, got {value!r}")
    return items


def main(args: argparse.Namespace) -> int:
    progress = CLIProgress("evaluate", args.quiet)
    try:
        if args.bf16_check:
            with progress.phase("bf16 against float32, each shipped checkpoint", 0) as phase:
                rows = bf16_check(device=args.device, limit=args.limit, write=args.write, report=phase)
            print(json.dumps(rows, indent=1) if args.format == "json" else format_bf16_check(rows))
            return 0
        if args.write:
            raise ValueError("--write goes with --bf16-check")
        if args.blind:
            cfg = blind_config_from_args(args)
            with progress.phase("blind: estimate the kernel, restore", 0) as phase:
                result = run_blind(cfg, report=phase)
            print(json.dumps(result, indent=1) if args.format == "json" else format_blind(result))
            return 0
        if args.task == "ct":
            cfg = ct_config_from_args(args)
            with progress.phase(f"CT, {cfg.spec.describe()}", 0) as phase:
                result = run_ct_evaluation(cfg, report=phase)
        elif args.off_course:
            cfg = config_from_args(args)
            results = []
            for i, (op, noise) in enumerate(OFF_COURSE, start=1):
                with progress.phase(f"setting {i} of {len(OFF_COURSE)}, {op.describe()}, noise {noise:g}", 0) as phase:
                    results.append(run_evaluation(replace(cfg, operator=op, noise=noise), report=phase))
            if args.format == "json":
                print(json.dumps({"off_course": results}, indent=1))
            elif args.format == "markdown":
                print(format_off_course_markdown(results))
            else:
                print("\n\n".join(format_table(r) for r in results))
            return 0
        else:
            cfg = config_from_args(args)
            with progress.phase(f"{cfg.operator.describe()}, noise {cfg.noise:g}", 0) as phase:
                result = run_evaluation(cfg, report=phase)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if args.format == "json" else FORMATS[args.format](result))
    return 0
