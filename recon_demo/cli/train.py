"""Training: one loop behind the ``train`` CLI, the loss study and the app's Train tab.

``python -m recon_demo train``: the flags (one per ``TrainConfig`` field), the run (``training.Trainer``) with its
progress and Ctrl-C (the state saved for ``--resume``), and the manifest entry at the end.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

from recon_demo.checkpoints import sha256_file
from recon_demo.losses import SELF_SUPERVISED
from recon_demo.physics import spec
from recon_demo.physics.blur import LECTURE_NOISE, LECTURE_OPERATOR, OperatorSpec
from recon_demo.physics.ct import FILTERS, LECTURE_ANGLES
from recon_demo.progress import CLIProgress
from recon_demo.training import distributed
from recon_demo.training.config import GENERAL_RANGES, SAMPLINGS, SCHEDULES, TASKS, OperatorRanges, TrainConfig, TrainingError
from recon_demo.training.loop import Trainer
from recon_demo.training.record import manifest_entry


def _pair(text: str, kind=float) -> tuple:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise ValueError(f"expected LOW,HIGH, got {text!r}")
    return kind(parts[0]), kind(parts[1])


def _names(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in _names(text))
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated numbers, got {text!r}") from None


def add_arguments(parser) -> None:
    parser.add_argument("--task", default="deblur", choices=TASKS, help="deblur (a blur) or ct (sinograms; refine the FBP)")
    g = parser.add_argument_group("model and loss")
    g.add_argument("--model", default="unet", help="registry name (default unet)")
    g.add_argument("--model-kwargs", default="{}", help='constructor arguments as JSON, e.g. \'{"n_filters": 16}\'')
    g.add_argument("--loss", default="mse", help="loss spec, e.g. 'mse + 0.2*ssim + 0.1*fourier' (default mse)")
    g.add_argument("--self-supervised", choices=tuple(SELF_SUPERVISED), metavar="LOSS",
                   help="train on measurements only, with a loss that never sees x_true: ei (equivariant imaging, "
                        "Chen et al. 2021) or mc (measurement consistency alone); replaces --loss")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=1000)
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--patch-size", type=int, default=128, help="side of the square training crops")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    g.add_argument("--schedule", default="constant", choices=SCHEDULES)
    g.add_argument("--ema", type=float, default=0.0,
                   help="keep an exponential moving average of the weights and save it instead of the last step's "
                        "weights; its decay at step t is min(EMA, (1+t)/(10+t)), so 0.999 holds only after 9,000 "
                        "steps (0.997 at step 3,000) (default 0: off)")  # fmt: skip
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", help="cpu, cuda, mps (default: RECON_DEVICE or the best available)")
    g.add_argument("--amp", action="store_true",
                   help="bf16 autocast: on CUDA, or on a CPU with bf16 instructions (measured 2x faster here)")
    g = parser.add_argument_group("operator: course (the lecture's, fixed) or general (random per image)")
    g.add_argument("--regime", default="course", choices=("course", "general"))
    spec.add_arguments(g, OperatorSpec, LECTURE_OPERATOR)  # the fixed blur (and the validation's): one flag per field
    g.add_argument("--noise", type=float, default=LECTURE_NOISE, help="relative noise level δ")
    # general: a range per drawn field of the spec (--blurs, --kernel-sizes, --angles, --variances, --kernel-styles);
    # for ct, --angles is the number of projection angles (default LECTURE_ANGLES), or LOW,HIGH for a network handed
    # the operator (--model unrolled): every ten steps draw their number in that range
    spec.add_range_arguments(g, OperatorSpec, notes={"angle": f"; ct: the number of projection angles (default {LECTURE_ANGLES}), "
                             "or LOW,HIGH for a network handed the operator (--model unrolled): every ten steps draw their "
                             "number in that range"})  # fmt: skip
    g.add_argument("--fbp-filter", default="ramp", choices=FILTERS, help="ct: the FBP window of the network's input")
    g.add_argument("--noises", default="0,0.05", help="general: relative noise levels LOW,HIGH")
    g.add_argument("--lecture-share", type=float, default=GENERAL_RANGES.lecture_share,
                   help="general: the fraction of draws that are the lecture's setting (default 0.25)")
    g = parser.add_argument_group("data")
    g.add_argument("--data", default="package,phantoms",
                   help="comma list of package, phantoms, ct-head, mri, photos (see `data`) and folders (recursive); "
                        "NAME:W draws that source with weight W")  # fmt: skip
    g.add_argument("--crop-scales", default="1", help="comma list: each crop covers scale × patch pixels, shrunk (default 1)")
    g.add_argument("--min-detail", type=float, default=0.0,
                   help="redraw crops whose mean neighbour difference is below this (flat or out of focus; e.g. 0.02)")
    g.add_argument("--image-size", type=int, default=256, help="training images' shorter side before cropping")
    g.add_argument("--max-images", type=int, help="use only the first N training images")
    g.add_argument("--phantoms", type=int, default=64, help="how many procedural phantoms")
    g.add_argument("--sampling", default="patches", choices=SAMPLINGS)
    g.add_argument("--epoch-batches", type=int, help="epochs sampling: at most N batches per epoch")
    g = parser.add_argument_group("validation, checkpoints, manifest")
    g.add_argument("--eval-every", type=int, default=50, help="validate every N steps (0: at the end only)")
    g.add_argument("--val-image", default="camera", help="held-out image of the fixed validation measurement")
    g.add_argument("--val-size", type=int, default=256)
    g.add_argument("--out", help="checkpoint path (.safetensors); default runs/MODEL_REGIME.safetensors")
    g.add_argument("--checkpoint-every", type=int, default=100, help="save the resumable state every N steps")
    g.add_argument("--resume", action="store_true", help="continue from OUT's saved state (OUT.state.pt)")
    g.add_argument("--init", help="start from the weights of this checkpoint of the same architecture (a warm start, "
                   "e.g. weights/unet_course.safetensors for a general UNet); recorded in the manifest")
    g.add_argument("--manifest-dir", help="folder whose manifest.json gets the entry (default: OUT's folder)")
    g.add_argument("--no-manifest", action="store_true", help="write no manifest entry (and skip the held-out evaluation)")


def config_from_args(args) -> TrainConfig:
    """The ``TrainConfig`` the flags describe; raises ``ValueError`` for malformed values."""
    try:
        kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as err:
        raise ValueError(f"--model-kwargs is not JSON ({err})") from None
    ranges = None
    angles, angle_range = LECTURE_ANGLES, None
    if args.task == "ct":
        if args.regime == "general":
            raise ValueError("--regime general (random blurs) is for deblurring, not --task ct")
        ct_angles = args.ranges_angle  # --angles: for ct, a number of projection angles or a range of them
        if ct_angles is not None and "," in ct_angles:  # a range: every ten steps draw their number of angles
            angle_range = _pair(ct_angles, int)
            angles = min(max(LECTURE_ANGLES, angle_range[0]), angle_range[1])  # the validation's, inside the range
        elif ct_angles is not None:
            try:
                angles = int(ct_angles)
            except ValueError:
                raise ValueError(f"--angles for ct is a number of angles or a range LOW,HIGH, got {ct_angles!r}") from None
    elif args.regime == "general":
        ranges = OperatorRanges(**spec.ranges_from_args(OperatorSpec, args), noise=_pair(args.noises),
                                lecture_share=args.lecture_share)  # fmt: skip
    cfg = TrainConfig(
        task=args.task, angles=angles, angle_range=angle_range, ct_filter=args.fbp_filter, model=args.model, model_kwargs=kwargs, loss=args.loss, self_supervised=args.self_supervised, steps=args.steps, batch_size=args.batch_size,
        patch_size=args.patch_size, lr=args.lr, schedule=args.schedule, ema=args.ema,
        operator=spec.from_args(OperatorSpec, args),
        noise=args.noise, ranges=ranges, data=_names(args.data), image_size=args.image_size,
        max_images=args.max_images, phantoms=args.phantoms, sampling=args.sampling, epoch_batches=args.epoch_batches,
        crop_scales=_floats(args.crop_scales, "--crop-scales"), min_detail=args.min_detail,
        seed=args.seed, device=args.device, amp=args.amp, eval_every=args.eval_every, val_image=args.val_image,
        val_size=args.val_size, checkpoint=args.out, checkpoint_every=args.checkpoint_every, init=args.init,
    )  # fmt: skip
    if cfg.checkpoint is None:
        cfg.checkpoint = str(Path("runs") / f"{cfg.model}_{cfg.validated().regime()}.safetensors")
    if Path(cfg.checkpoint).suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors, got {cfg.checkpoint}")
    return cfg.validated()


def main(args) -> int:
    start = time.perf_counter()
    try:
        cfg = config_from_args(args)
        trainer = Trainer(cfg, resume=args.resume)
    except ValueError as err:
        distributed.teardown()
        print(f"train: {err}", file=sys.stderr)
        return 2
    try:
        code = _run_cli(args, cfg, trainer, start)
    except BaseException:
        distributed.teardown()
        raise
    # the processes leave together: rank 0 may still be writing the checkpoint and the manifest (a rank that left
    # the group before it was seen aborting at exit on a loaded machine)
    distributed.teardown(together=True)
    return code


def _run_cli(args, cfg: TrainConfig, trainer: Trainer, start: float) -> int:
    main_process = trainer.world.is_main  # under torchrun, the others train silently and write nothing
    for notice in trainer.notices if main_process else ():
        print(f"train: {notice}", file=sys.stderr)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C: stop cleanly, keep the state
    try:
        with CLIProgress("train", args.quiet or not main_process).phase(f"{cfg.model}, steps", cfg.steps, initial=trainer.step) as bar:
            for event in trainer.run(cancel):
                postfix = {"loss": f"{event.loss:.4g}", "lr": f"{event.lr:.2g}"}
                if event.metrics:
                    postfix["val_psnr"] = f"{event.metrics['psnr']:.2f}"
                bar.set_postfix(postfix)
                bar.update(event.step)
    except TrainingError as err:
        print(f"train: {err}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
    if not main_process:
        return 130 if event.status == "cancelled" else 0
    if event.status == "cancelled":
        print(f"stopped at step {trainer.step} of {cfg.steps}; continue with the same flags and --resume "
              f"(state: {cfg.state_path()})")  # fmt: skip
        return 130
    print(f"{cfg.model}: {trainer.step} steps in {trainer.elapsed:.1f} s on {trainer.device}; "
          f"validation ({cfg.val_image}) PSNR {event.metrics['psnr']:.2f} dB, SSIM {event.metrics['ssim']:.4f}")  # fmt: skip
    checkpoint = Path(cfg.checkpoint)
    print(f"weights: {checkpoint}")
    if not args.no_manifest:
        from recon_demo.checkpoints import Manifest

        manifest_dir = Path(args.manifest_dir) if args.manifest_dir else checkpoint.parent
        manifest = Manifest.load(manifest_dir)
        entry = manifest_entry(trainer, checkpoint, sha256_file(checkpoint), manifest_dir, time.perf_counter() - start)
        manifest.upsert(entry)
        held = entry.metrics
        reference = "fbp" if cfg.task == "ct" else "measurement"
        print(f"held-out ({held['protocol']}, {len(held['images'])} images): PSNR {held['model']['psnr']:.3f} dB "
              f"({reference} {held[reference]['psnr']:.3f} dB); manifest: {manifest.path}")  # fmt: skip
    return 0
