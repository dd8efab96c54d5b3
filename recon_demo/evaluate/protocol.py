"""The lecture's evaluation protocol for both tasks, as functions: a config in, a JSON-ready result out (see
the package's docstring); one loop over images and methods (``methods.run_methods``) serves both."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recon_demo import datasets, images
from recon_demo.checkpoints import ct_regime
from recon_demo.errors import UnknownName
from recon_demo.methods import ct as ct_methods
from recon_demo.methods import registry
from recon_demo.methods.base import run_methods
from recon_demo.methods.blur import BASELINES
from recon_demo.metrics import lpips_status
from recon_demo.models import count_parameters, list_models, model_info
from recon_demo.physics import spec
from recon_demo.physics.blur import OperatorSpec
from recon_demo.physics.ct import CT_NOISE, CTSpec
from recon_demo.physics.noise import add_relative_noise
from recon_demo.progress import Report, no_progress
from recon_demo.serving.engine import Engine

REPORTED = ("mse", "psnr", "ssim", "lpips")
# Five (operator, noise) settings inside the general regime's ranges and away from the lecture's (motion 9 @ 20°,
# ippy, δ 0.01): a general checkpoint must beat the measurement and Wiener at each (`--off-course`).
OFF_COURSE: tuple[tuple[OperatorSpec, float], ...] = (
    (OperatorSpec(blur="motion", kernel_size=5, angle=70.0, variance=1.0, kernel_style="centered"), 0.02),
    (OperatorSpec(blur="motion", kernel_size=13, angle=135.0, variance=1.0, kernel_style="ippy"), 0.005),
    (OperatorSpec(blur="motion", kernel_size=7, angle=0.0, variance=1.0, kernel_style="centered"), 0.03),
    (OperatorSpec(blur="gaussian", kernel_size=9, angle=0.0, variance=2.0, kernel_style="ippy"), 0.01),
    (OperatorSpec(blur="gaussian", kernel_size=13, angle=0.0, variance=3.5, kernel_style="ippy"), 0.04),
)
PIXELS_256 = 256 * 256  # times are reported per 256² image: each image's time scaled by 256² / its pixels
MAX_SIZE = 2048  # the shorter side after Resize; beyond it the UNets need more memory than a laptop has


@dataclass
class EvalConfig:
    """Everything that defines one evaluation; the CLI flags map onto it one to one."""

    models: list[tuple[str, str | None]] = field(default_factory=list)  # (registry name, checkpoint path or None)
    baselines: list[str] = field(default_factory=list)  # names from BASELINES
    images: str | None = None  # folder of images; None: the held-out package images
    limit: int | None = None  # first N images only
    size: int = 256  # Resize(size) of the shorter side
    operator: OperatorSpec = field(default_factory=OperatorSpec)
    noise: float = 0.01  # relative noise level δ
    seed: int = 123  # torch.manual_seed before the loop
    lpips: bool = False  # also compute LPIPS
    regime: str = "course"  # which shipped checkpoints `name` (without =PATH) selects
    device: str | None = None
    precision: str = "fp32"  # "fp32": the lecture's figures on every machine; "auto": as the app runs each network; "bf16": all
    unshipped: list[str] = field(default_factory=list)  # architectures "all" left out: no weights in the regime


def parse_models(spec: str | None, shipped: list[str] | None = None) -> list[tuple[str, str | None]]:
    """``"cnn=CNN.pth,unet"`` → ``[("cnn", "CNN.pth"), ("unet", None)]``; ``"all"`` names the seven
    architectures, or, given ``shipped``, those of them with weights in the regime."""
    if not spec:
        return []
    items: list[tuple[str, str | None]] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item == "all":
            items += [(name, None) for name in list_models() if shipped is None or name in shipped]
            continue
        name, _, path = item.partition("=")
        model_info(name.strip())  # unknown names fail here with the known ones
        items.append((name.strip(), path.strip() or None))
    return items


def parse_baselines(spec: str | None, registry: dict = BASELINES, kind: str = "baseline") -> list[str]:
    """``"wiener, tv"`` → ``["wiener", "tv"]``, each checked against ``registry`` (CT's: ``ct_methods.CT_BASELINES``)."""
    names = [s.strip() for s in (spec or "").split(",") if s.strip()]
    for name in names:
        if name not in registry:
            raise UnknownName(f"unknown {kind} {name!r}; known {kind}s: {', '.join(registry)}")
    return names


def load_images(folder: str | None, limit: int | None) -> list[tuple[str, Image.Image]]:
    """(name, PIL image) pairs in sorted name order: a folder's image files, the held-out examples, or the
    held-out medical set (``HELD_OUT_MEDICAL``, in its own order)."""
    if folder is None:
        names = sorted(images.split_names("held_out"))[: limit or None]
        return [(name, images.load_example(name)) for name in names]
    if folder == datasets.HELD_OUT_MEDICAL:
        return datasets.held_out_medical(limit)
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root}")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in images.IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(images.IMAGE_SUFFIXES)}) in {root}")
    return [(p.name, images.open_image(p)) for p in files[: limit or None]]  # read only what is used


def run_evaluation(cfg: EvalConfig, engine: Engine | None = None, report: Report = no_progress) -> dict:
    """Run the protocol; returns the JSON-ready result. ``report`` hears of each image × method done."""
    if not cfg.models and not cfg.baselines:
        raise ValueError("nothing to evaluate: give --models and/or --baselines")
    engine = engine or Engine(cfg.device, precision=cfg.precision)
    K = cfg.operator.build()
    networks = {name: engine.model(name, path, cfg.regime) for name, path in cfg.models}  # fail early (then cached)
    methods = registry.build([*networks, *cfg.baselines], engine, regime=cfg.regime, checkpoints=dict(cfg.models))
    with_lpips, notes = _lpips_or_note(cfg.lpips)
    if cfg.unshipped:
        notes.append(f"no {cfg.regime} weights yet, so left out of 'all': {', '.join(map(registry.label, cfg.unshipped))}")
    torch.manual_seed(cfg.seed)

    def measure(x_true: torch.Tensor) -> torch.Tensor:
        return add_relative_noise(K.forward(x_true), cfg.noise)  # the global RNG, seeded once above

    per_image, ms = _protocol(cfg.images, cfg.limit, lambda img: images.protocol_tensor(img, cfg.size), measure, methods, K,
                              with_lpips, with_dc=False, report=report)  # fmt: skip
    results = _averages(per_image, [m.name for m in methods], REPORTED)
    _add_cost(results, ms, networks)
    protocol = {
        "images": list(per_image),
        "images_dir": cfg.images or "held-out package images",
        "size": cfg.size,
        "operator": cfg.operator.blur,  # the golden file's key names: the blur, then its fields (None where unused)
        **{name: getattr(cfg.operator, name) for name, p in spec.params(cfg.operator).items() if p.widget and name != "blur"},
        "kernel": cfg.operator.text(),
        "summary": f"{cfg.operator.describe()}, noise {cfg.noise:g}, seed {cfg.seed}",
        "noise": cfg.noise,
        "seed": cfg.seed,
        "lpips": with_lpips,
        "regime": cfg.regime,
        "checkpoints": {name: path or f"shipped ({cfg.regime})" for name, path in cfg.models},
        "device": str(engine.device),
        "precision": _precisions(engine, networks),
    }
    return {"protocol": protocol, "results": results, "per_image": per_image, "notes": notes}


def _protocol(folder, limit, to_tensor, measure, methods: list, operator, with_lpips: bool, with_dc: bool,
              report: Report) -> tuple[dict[str, dict[str, dict[str, float | None]]], dict[str, list[float]]]:  # fmt: skip
    """The loop both tasks share: each image in name order, its measurement, every method on it (``run_methods``,
    warmed up once per shape); returns each image's metrics per method and each method's ms per 256² image."""
    per_image: dict[str, dict[str, dict[str, float | None]]] = {}
    ms: dict[str, list[float]] = {m.name: [] for m in methods}
    warm: set = set()
    loaded = load_images(folder, limit)
    for i, (file_name, img) in enumerate(loaded):
        x_true = to_tensor(img)  # (1, 1, H, W) on the CPU
        y_delta = measure(x_true)
        per_256 = PIXELS_256 / x_true.numel()  # Resize(256) keeps the aspect: 256×384 for a 2:3 image

        def heard(done: int, total: int, what: str, i=i, file_name=file_name) -> None:
            report(i * len(methods) + done, len(loaded) * len(methods), f"{file_name}, {what}")

        recs = run_methods(methods, y_delta, operator, x_true, with_lpips=with_lpips, with_dc=with_dc, warm=warm, report=heard)
        per_image[file_name] = {r.name: _reported(r.metrics, with_dc) for r in recs}
        for r in recs:
            ms[r.name].append(r.ms * per_256)
    return per_image, ms


def _reported(metrics: dict[str, float | None], with_dc: bool) -> dict[str, float | None]:
    return {m: metrics.get(m) for m in (*REPORTED, *(("dc",) if with_dc else ()))}


def _lpips_or_note(asked: bool) -> tuple[bool, list[str]]:
    """Whether LPIPS will be computed, and the note saying why not when it was asked but is unavailable."""
    if not asked:
        return False, []
    ok, reason = lpips_status()
    return (True, []) if ok else (False, [reason])


def _averages(per_image: dict[str, dict[str, dict]], names: list[str], metrics: tuple[str, ...]) -> dict[str, dict]:
    """Each name's metrics averaged over the images (``None`` when any image lacks one), with ``n``."""
    results = {}
    for name in names:
        rows = [per_image[f][name] for f in per_image]
        results[name] = {m: _mean([r[m] for r in rows]) for m in metrics} | {"n": len(rows)}
    return results


def _add_cost(results: dict[str, dict], ms: dict[str, list[float]], networks: dict[str, torch.nn.Module]) -> None:
    """Each result's median ms per 256² image (the median, so the first call's warm-up does not count) and,
    for networks, its parameters."""
    for name, r in results.items():
        r["ms"] = float(np.median(ms[name])) if ms[name] else None
        r["params"] = count_parameters(networks[name]) if name in networks else None


def _mean(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else float(np.mean(values))


@dataclass
class CTEvalConfig:
    """One CT evaluation; ``evaluate --task ct`` maps its flags onto it."""

    models: list[tuple[str, str | None]] = field(default_factory=list)  # CT registry names, with a file or shipped
    baselines: list[str] = field(default_factory=list)  # names from ct_methods.CT_BASELINES
    images: str | None = None  # folder; None: the held-out package images
    limit: int | None = None
    spec: CTSpec = field(default_factory=CTSpec)  # angles, size (the square images' side), FBP filter
    noise: float = CT_NOISE  # relative noise on the sinogram
    seed: int = 123
    lpips: bool = False
    device: str | None = None
    precision: str = "fp32"  # as EvalConfig's


def run_ct_evaluation(cfg: CTEvalConfig, engine: Engine | None = None, report: Report = no_progress) -> dict:
    """The protocol with the sinogram in place of the blur: ``y_delta = A x + e/||e||·||A x||·δ`` with
    ``e = torch.randn_like(A x)``, images ``Resize(size)`` then their central square, a ``dc`` column
    (data consistency on the sinogram); the JSON layout is the blur's."""
    if not cfg.models and not cfg.baselines:
        raise ValueError("nothing to evaluate: give --models and/or --baselines")
    radon = cfg.spec.build()
    engine = engine or Engine(cfg.device, precision=cfg.precision)
    regime = ct_regime(cfg.spec.angles)
    regimes = {name: ct_methods.ct_regime_of(name, cfg.spec.angles) for name, _ in cfg.models}
    networks = {name: engine.model(name, path, regimes[name]) for name, path in cfg.models}  # fail early
    methods = registry.build([*networks, *cfg.baselines], engine, "ct", checkpoints=dict(cfg.models), filter=cfg.spec.filter,
                             angles=cfg.spec.angles)  # fmt: skip
    with_lpips, notes = _lpips_or_note(cfg.lpips)
    torch.manual_seed(cfg.seed)

    def measure(x_true: torch.Tensor) -> torch.Tensor:
        return ct_methods.measure(x_true, radon, cfg.noise)  # the global RNG, seeded once above

    per_image, ms = _protocol(cfg.images, cfg.limit, lambda img: images.protocol_tensor(img, cfg.spec.size, square=True),
                              measure, methods, radon, with_lpips, with_dc=True, report=report)  # fmt: skip
    protocol = {
        "task": "ct",
        "images": list(per_image),
        "images_dir": cfg.images or "held-out package images",
        "size": cfg.spec.size,
        **{k: v for k, v in cfg.spec.to_dict().items() if k != "size"},
        "summary": f"{cfg.spec.describe()}, sinogram noise {cfg.noise:g}, seed {cfg.seed}",
        "noise": cfg.noise,
        "seed": cfg.seed,
        "lpips": with_lpips,
        "regime": regime,
        "checkpoints": {name: path or f"shipped ({regimes[name]})" for name, path in cfg.models},
        "device": str(engine.device),
        "precision": _precisions(engine, networks),
    }
    results = _averages(per_image, list(networks) + list(cfg.baselines), (*REPORTED, "dc"))
    _add_cost(results, ms, networks)
    return {"protocol": protocol, "results": results, "per_image": per_image, "notes": notes}




def _precisions(engine: Engine, networks: dict[str, torch.nn.Module]) -> dict[str, str]:
    """How each network ran ("fp32" or "bf16", ``Engine.runs_bf16``): ``--precision auto`` gives slightly other figures
    on a machine with native bf16 for a checkpoint that runs in bf16 there; the default, fp32, the same everywhere."""
    return {name: engine.precision_name(model) for name, model in networks.items()}
