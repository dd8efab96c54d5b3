"""The clean training images of a run and its batches: sources (package images, phantoms, the open data of
``recon_demo.datasets``, folders), weighted draws, crops at several scales with flat ones redrawn, and the
measurements made on the fly (a blur and relative noise, or a sinogram and its FBP for CT)."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from recon_demo import datasets, images
from recon_demo.models import is_handed_operator
from recon_demo.physics.blur import Blur
from recon_demo.physics.ct import Radon, radon_operator
from recon_demo.physics.noise import add_relative_noise
from recon_demo.training.config import DATA_SOURCES, TrainConfig, TrainingError, parse_source


@lru_cache(maxsize=256)
def _package_image(name: str, size: int) -> torch.Tensor:
    return images.to_tensor(images.load_example(name), size)[0]  # (1, H, W)


@lru_cache(maxsize=1024)
def _phantom_image(seed: int, size: int) -> torch.Tensor:
    return torch.from_numpy(images.ellipse_phantom(size, seed))[None]  # (1, size, size)


def _folder_files(folder: str) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        known = ", ".join((*DATA_SOURCES, *datasets.SOURCES))
        raise TrainingError(f"no folder {root} (data sources are {known} or a folder of images)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in images.IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(f"no images ({', '.join(images.IMAGE_SUFFIXES)}) under {root}")
    return files


@lru_cache(maxsize=512)
def _photo_image(path: str, size: int) -> torch.Tensor:
    return images.to_tensor(images.open_image(path), size)[0]  # (1, H, W)


def _slice_tensor(array: np.ndarray, size: int) -> torch.Tensor:
    """A 2-D slice as (1, H, W), resized (bilinear, antialiased) to ``size`` on its shorter side."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    out = F.interpolate(t, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear", antialias=True,
                        align_corners=False)  # fmt: skip
    return out[0]


class TrainingImages:
    """The clean training images of a config, in a fixed order, loaded on first use and kept.

    Order: each source of ``sources`` in turn: the package images of the training split (catalogue order), the
    phantoms (seeds from ``images.PHANTOM_TRAIN_SEED_START``), a named open source (``datasets.SOURCES``:
    its slices or photographs), or a folder's files in sorted path order; ``max_images`` keeps the first N.
    Every image is (1, H, W), resized to ``image_size`` on its shorter side; grey in [0, 1], except CT slices,
    kept in HU until ``image`` draws a display window. With weights (``"photos:3"``), ``draw`` picks a source
    with probability ∝ its weight, then one of its images; without, every image is equally likely.
    """

    def __init__(self, sources: tuple[str, ...], image_size: int, phantoms: int = 64, max_images: int | None = None):
        self.size = image_size
        self.items: list[tuple[str, object]] = []
        spans: list[tuple[str, int, int, float | None]] = []  # (source, first item, end, weight)
        for item in sources:
            source, weight = parse_source(item)
            start = len(self.items)
            if source == "package":
                self.items += [("package", name) for name in images.split_names("train")]
            elif source == "phantoms":
                self.items += [("phantom", images.PHANTOM_TRAIN_SEED_START + i) for i in range(phantoms)]
            elif source in datasets.SOURCES:
                self.items += _open_source_items(source)
            else:
                self.items += [("file", path) for path in _folder_files(source)]
            spans.append((source, start, len(self.items), weight))
        self.items = self.items[:max_images]
        if not self.items:
            raise TrainingError("the training data is empty")
        self.spans = [(src, a, min(b, len(self.items)), w) for src, a, b, w in spans if a < len(self.items) and b > a]
        self.weighted = any(w is not None for *_, w in self.spans)
        self._weights = torch.tensor([w if w is not None else 1.0 for *_, w in self.spans], dtype=torch.float64)
        self._files: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, generator: torch.Generator) -> int:
        """A random image index: a source by weight, then one of its images (uniform without weights)."""
        if not self.weighted:
            return int(torch.randint(len(self), (), generator=generator))
        _, start, end, _ = self.spans[int(torch.multinomial(self._weights, 1, generator=generator))]
        return start + int(torch.randint(end - start, (), generator=generator))

    def image(self, index: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Image ``index`` in [0, 1]; a CT slice through a window drawn with ``generator`` (None: soft tissue)."""
        img = self[index]
        if self.items[index][0] != "ct":
            return img
        if generator is None:
            return datasets.ct_window(img, 40.0, 400.0)
        lo, hi = datasets.CT_LEVELS
        level = lo + (hi - lo) * float(torch.rand((), generator=generator))
        w_lo, w_hi = math.log(datasets.CT_WIDTHS[0]), math.log(datasets.CT_WIDTHS[1])
        width = math.exp(w_lo + (w_hi - w_lo) * float(torch.rand((), generator=generator)))
        return datasets.ct_window(img, level, width)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as (1, H, W), shorter side ``image_size`` (CT slices in HU)."""
        kind, key = self.items[index]
        if kind == "package":
            return _package_image(key, self.size)
        if kind == "phantom":
            return _phantom_image(key, self.size)
        if kind == "photo":
            return _photo_image(str(key), self.size)
        if index not in self._files:
            try:
                if kind in ("ct", "mri"):
                    path, number = key
                    slices = datasets.ct_slices(path) if kind == "ct" else datasets.mri_slices(path)
                    self._files[index] = _slice_tensor(slices[number], self.size)
                else:
                    self._files[index] = images.to_tensor(images.open_image(key), self.size)[0]
            except (ValueError, OSError) as err:
                raise TrainingError(f"cannot read the training image {key}: {err}") from None
        return self._files[index]

    def describe(self) -> dict:
        """What the data is, for the manifest: counts per kind and per source, with their licences."""
        counts: dict[str, int] = {}
        for kind, _ in self.items:
            counts[kind] = counts.get(kind, 0) + 1
        out = {
            "images": len(self.items),
            "package": [key for kind, key in self.items if kind == "package"],
            "phantoms": counts.get("phantom", 0),
            "files": counts.get("file", 0),
            "size": self.size,
        }
        named = [(src, b - a, w) for src, a, b, w in self.spans if src in datasets.SOURCES]
        if named or self.weighted:
            out["by_source"] = {src: {"images": b - a, "weight": w if w is not None else 1.0,
                                    **({"license": datasets.SOURCES[src].license} if src in datasets.SOURCES else {})}
                              for src, a, b, w in self.spans}  # fmt: skip
        return out


def _open_source_items(name: str) -> list[tuple[str, object]]:
    """The items of a named open source; a source that is not installed says how to install it."""
    source = datasets.SOURCES[name]
    paths = source.paths()
    if not paths:
        raise TrainingError(f"the data source {name} is not installed here: {source.install}")
    if name == "photos":
        return [("photo", p) for p in paths]
    read = datasets.ct_slices if name == "ct-head" else datasets.mri_slices
    kind = "ct" if name == "ct-head" else "mri"
    return [(kind, (str(p), i)) for p in paths for i in range(len(read(str(p))))]


def _random_patch(img: torch.Tensor, patch: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``patch``² crop, then one of the 8 flips and 90° rotations."""
    _, h, w = img.shape
    top = int(torch.randint(h - patch + 1, (), generator=generator))
    left = int(torch.randint(w - patch + 1, (), generator=generator))
    crop = img[:, top : top + patch, left : left + patch]
    crop = torch.rot90(crop, int(torch.randint(4, (), generator=generator)), dims=(1, 2))
    return crop.flip(2) if int(torch.randint(2, (), generator=generator)) else crop


def detail(crop: torch.Tensor) -> float:
    """Mean absolute difference between neighbouring pixels (both directions): low for flat or blurred crops."""
    return 0.5 * float((crop[..., 1:, :] - crop[..., :-1, :]).abs().mean() + (crop[..., :, 1:] - crop[..., :, :-1]).abs().mean())


def _training_patch(cfg: TrainConfig, data: TrainingImages, index: int, generator: torch.Generator) -> torch.Tensor:
    """One training crop of image ``index``: at a drawn scale when ``crop_scales`` offers several (the crop covers
    scale × patch pixels, shrunk by area), redrawn up to 8 times from the same image while its ``detail`` is
    below ``min_detail``. With the defaults it is exactly ``_random_patch`` (the same draws)."""
    for attempt in range(8):
        img = data.image(index, generator)
        scale = cfg.crop_scales[0]
        if len(cfg.crop_scales) > 1:
            scale = cfg.crop_scales[int(torch.randint(len(cfg.crop_scales), (), generator=generator))]
        side = min(round(cfg.patch_size * scale), *img.shape[-2:])
        crop = _random_patch(img, side, generator)
        if side != cfg.patch_size:
            crop = F.interpolate(crop[None], size=(cfg.patch_size, cfg.patch_size), mode="area")[0]
        if cfg.min_detail <= 0 or attempt == 7 or detail(crop) >= cfg.min_detail:
            return crop
    raise AssertionError("unreachable")


def _centre_crop(img: torch.Tensor, patch: int) -> torch.Tensor:
    _, h, w = img.shape
    top, left = (h - patch) // 2, (w - patch) // 2
    return img[:, top : top + patch, left : left + patch]


def clean_batch(cfg: TrainConfig, data: TrainingImages, step: int, generator: torch.Generator) -> torch.Tensor:
    """The clean images of step ``step`` (0-based), (B, 1, P, P).

    ``patches``: random images and crops drawn with ``generator``. ``epochs``: the lecture's shuffled
    epochs of whole (centre-cropped) images, each epoch's order drawn from ``seed`` and the epoch number,
    so that a resumed run finds its place without extra state.
    """
    if cfg.sampling == "patches":
        if data.weighted:
            indices = [data.draw(generator) for _ in range(cfg.batch_size)]
        else:  # all indices first, as before weights existed: the same draws reproduce the shipped recipes
            indices = torch.randint(len(data), (cfg.batch_size,), generator=generator).tolist()
        return torch.stack([_training_patch(cfg, data, i, generator) for i in indices])
    per_epoch = math.ceil(len(data) / cfg.batch_size)
    if cfg.epoch_batches is not None:
        per_epoch = min(per_epoch, cfg.epoch_batches)
    epoch, batch = divmod(step, per_epoch)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    indices = order[batch * cfg.batch_size : (batch + 1) * cfg.batch_size].tolist()
    return torch.stack([_centre_crop(data.image(i), cfg.patch_size) for i in indices])


def measure(cfg: TrainConfig, x_true: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, Blur]:
    """``(y_delta, K)`` for a batch, ``y_delta = K x_true + e``: the fixed operator, or one drawn per image from
    the ranges (then ``K`` blurs each image with its own kernel, for a network that is handed it)."""
    if cfg.ranges is None:
        operator = cfg.operator.build()
        return add_relative_noise(operator.forward(x_true), cfg.noise, generator), operator
    out, blurs = [], []
    for x in x_true.split(1):
        spec, level = cfg.ranges.sample(generator)
        blurs.append(spec.build())
        out.append(add_relative_noise(blurs[-1].forward(x), level, generator))
    return torch.cat(out), Blur.per_image(blurs)


def ct_batch(
    cfg: TrainConfig, data: TrainingImages, step: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """CT training pairs ``(x_true, x_fbp)``, (B, 1, P, P) on ``device``.

    Whole ``image_size``² images (with their flips and rotations) are projected, noised and
    back-projected, so that the FBP's streaks are those of the full geometry; then the same random
    ``patch_size``² crop is taken from each image and its FBP.
    """
    full = clean_batch(replace(cfg, patch_size=cfg.image_size), data, step, generator).to(device)  # (B, 1, n, n)
    radon = radon_operator(cfg.image_size, cfg.angles)
    y_delta = add_relative_noise(radon.forward(full), cfg.noise, generator)
    x_fbp = radon.fbp(y_delta, cfg.ct_filter)
    if cfg.patch_size == cfg.image_size:
        return full, x_fbp
    pairs = [_random_patch(torch.cat([x, f]), cfg.patch_size, generator) for x, f in zip(full, x_fbp)]  # (2, P, P) each
    both = torch.stack(pairs)  # (B, 2, P, P)
    return both[:, :1], both[:, 1:]


STEPS_PER_GEOMETRY = 10  # CT over a range of angle counts: steps that share one number of angles


def ct_sinogram_batch(
    cfg: TrainConfig, data: TrainingImages, step: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, Radon]:
    """CT training for a network handed the operator: ``(x_true, y_delta, radon)`` with whole ``image_size``² images
    and their noisy sinograms. The number of angles is drawn in ``cfg.angle_range`` for every ``STEPS_PER_GEOMETRY``
    steps (from the seed and the step, so a resumed run draws the same; the shipped CT checkpoint was trained so,
    when each geometry's projection matrix took seconds to build)."""
    full = clean_batch(replace(cfg, patch_size=cfg.image_size), data, step, generator).to(device)  # (B, 1, n, n)
    lo, hi = cfg.angle_range or (cfg.angles, cfg.angles)
    draw = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step // STEPS_PER_GEOMETRY)
    radon = radon_operator(cfg.image_size, int(torch.randint(lo, hi + 1, (), generator=draw)))
    return full, add_relative_noise(radon.forward(full), cfg.noise, generator), radon


def validation_pair(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed held-out pair ``(x_true, network input)``: ``val_image`` with the config's fixed operator
    (the lecture's for a general model; for CT the FBP of its sinogram) and noise drawn from ``seed``; the
    same in every run of that seed."""
    generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.task == "ct":
        x_true = images.protocol_tensor(images.load_example(cfg.val_image), cfg.val_size, square=True)
        radon = radon_operator(cfg.val_size, cfg.angles)
        y_delta = add_relative_noise(radon.forward(x_true), cfg.noise, generator)
        return x_true, y_delta if is_handed_operator(cfg.model) else radon.fbp(y_delta, cfg.ct_filter)
    x_true = images.protocol_tensor(images.load_example(cfg.val_image), cfg.val_size)
    y_delta = add_relative_noise(cfg.operator.build().forward(x_true), cfg.noise, generator)
    return x_true, y_delta
