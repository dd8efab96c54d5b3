"""``python -m recon_demo loss-study``: the lecture's loss study, where the training loss changes the result.

The flags map onto ``lab.loss_study.LossStudyConfig`` (the lecture's protocol, its two experiments as presets and any
loss spec added with ``--loss``); the study runs with its steps as progress on stderr, then prints each
configuration's metrics beside the lecture's published ones (or JSON) and, with ``--save-figure``, the lecture-style
figure.
"""

from __future__ import annotations

import argparse
import json
import sys

from recon_demo.lab.loss_study import EXPERIMENTS, LossStudy, LossStudyConfig
from recon_demo.losses import parse_loss
from recon_demo.physics import spec as operator_spec
from recon_demo.physics.blur import LECTURE_NOISE, LECTURE_OPERATOR, OperatorSpec
from recon_demo.progress import CLIProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", default="pure", choices=(*EXPERIMENTS, "all", "none"),
                        help="the lecture's preset configurations (default pure)")  # fmt: skip
    parser.add_argument("--loss", action="append", default=[], metavar="[LABEL=]SPEC",
                        help="another configuration, e.g. 'mse + 0.5*fourier_hp(0.3)'; repeatable")  # fmt: skip
    parser.add_argument("--model", default="loss_study_cnn", help="registry name (default loss_study_cnn)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epoch-batches", type=int, default=8, help="at most N batches per epoch (default 8)")
    parser.add_argument("--images", type=int, default=32, help="the first N training images (default 32)")
    parser.add_argument("--size", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-image", default="camera", help="held-out image of the test measurement")
    operator_spec.add_arguments(parser, OperatorSpec, LECTURE_OPERATOR)  # --blur, --kernel-size, --angle, … (each field's Param)
    parser.add_argument("--noise", type=float, default=LECTURE_NOISE)
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    parser.add_argument("--device", help="cpu, cuda, mps (default: RECON_DEVICE or the best available)")
    parser.add_argument("--format", default="table", choices=("table", "json"))
    parser.add_argument("--save-figure", metavar="PNG", help="write the lecture-style figure")


def config_from_args(args: argparse.Namespace) -> LossStudyConfig:
    losses: dict[str, str] = {}
    for name in EXPERIMENTS if args.experiment == "all" else [] if args.experiment == "none" else [args.experiment]:
        losses.update(EXPERIMENTS[name])
    for item in args.loss:
        label, sep, spec = item.partition("=")
        label, spec = (label.strip(), spec) if sep else (str(parse_loss(item)), item)
        losses[label] = spec
    return LossStudyConfig(
        losses=losses, model=args.model, epochs=args.epochs, batch_size=args.batch_size, epoch_batches=args.epoch_batches,
        n_images=args.images, size=args.size, lr=args.lr,
        operator=operator_spec.from_args(OperatorSpec, args),
        noise=args.noise, seed=args.seed, test_image=args.test_image, lpips=not args.no_lpips, device=args.device,
    ).validated()  # fmt: skip


def main(args: argparse.Namespace) -> int:
    try:
        study = LossStudy(config_from_args(args))
        total = study.cfg.steps * len(study.cfg.losses)
        with CLIProgress("loss-study", args.quiet).phase("training steps", total) as phase:
            done = 0
            for label, event in study.run():
                done += 1 if event.status == "running" or event.step == study.cfg.steps else 0
                phase.update(done, label)
                phase.set_postfix({"loss": f"{event.loss:.4g}"})
        if args.save_figure:
            study.save_figure(args.save_figure)
    except ValueError as err:
        print(f"loss-study: {err}", file=sys.stderr)
        return 2
    print(json.dumps(study.to_json(), indent=1) if args.format == "json" else study.format_table())
    if args.save_figure and args.format == "table":
        print(f"figure: {args.save_figure}")
    return 0
