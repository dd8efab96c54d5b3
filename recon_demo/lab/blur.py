"""The deblurring lab: everything the Reconstruct tab computes, as plain values (the UI only wires widgets to it).

A ``Setting`` (``lab.setting``) is one state of the tab: image, blur, noise, seed, models and weights regime,
validated server-side (API callers bypass slider bounds) and carried in the page's URL. ``Lab`` holds the engine and three small caches:
working images (an upload is keyed by its content) and measurements (keyed by image and operator setting, so
switching models does not redraw the measurement), and reconstructions (keyed by measurement and model, so
adding a model to the selection runs that model alone). ``Lab.run`` returns a ``LabResult``: ground truth,
measurement, kernel, each reconstruction with its metrics and its network's first-layer activations.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recon_demo import images, metrics
from recon_demo.activations import activation_grid
from recon_demo.cache import BoundedCache
from recon_demo.checkpoints import CheckpointError
from recon_demo.lab.setting import (
    CHECKPOINT_SUFFIXES,
    IMAGE_SIZES,
    MAX_UPLOAD_CHECKPOINT,
    WORK_SIZE,
    LabResult,
    Setting,
    SettingError,
    _is_upload_key,
    architecture_of,
    is_own_checkpoint,
)
from recon_demo.methods.base import Reconstruction
from recon_demo.methods.blur import BASELINES
from recon_demo.models import is_handed_operator, list_models
from recon_demo.physics.blur import (
    OperatorSpec,
)
from recon_demo.physics.noise import add_relative_noise
from recon_demo.progress import Report, no_progress
from recon_demo.serving.engine import MAX_FILE_MODELS, Engine


def _image_key(image: str, size: int) -> str:
    """The image cache's key of ``image`` at ``size``: the name itself at the working size, as always."""
    return image if size == WORK_SIZE else f"{image}@{size}"


class Lab:
    """The app's computations, shared by every session of a server (its caches are bounded and locked)."""

    def __init__(self, engine: Engine | None = None, cache_size: int = 32):
        self.engine = engine or Engine()
        self._images: BoundedCache[str, torch.Tensor] = BoundedCache(cache_size)
        self._measurements: BoundedCache[tuple, torch.Tensor] = BoundedCache(cache_size)
        self._reconstructions: BoundedCache[tuple, tuple[Reconstruction, np.ndarray | None]] = BoundedCache(cache_size)
        # own:<arch>:<sha1> → the file, deleted when it leaves the cache
        self._checkpoints: BoundedCache[str, Path] = BoundedCache(MAX_FILE_MODELS, on_evict=lambda _, path: path.unlink(missing_ok=True))
        self._checkpoint_dir = Path(tempfile.mkdtemp(prefix="recon-demo-checkpoints-"))
        self._lock = threading.Lock()  # guards the flights
        self._flights: dict[tuple, tuple[threading.Lock, int]] = {}  # measurement → (its lock, callers using it)

    # -- images and measurements --------------------------------------------------------------------

    def add_upload(self, source: str | Path | bytes | np.ndarray) -> str:
        """Read an uploaded file (any common format, 16-bit, RGBA, DICOM), or an array a Python caller gives
        (``images.from_array``); returns its key ``upload:<sha1>``.

        Raises ``ValueError`` with a message a person can act on when it is not a usable image.
        """
        if isinstance(source, np.ndarray):
            data = f"{source.shape}{source.dtype}".encode() + np.ascontiguousarray(source).tobytes()
            read = partial(images.from_array, source)
        else:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            read = partial(images.open_image, data)
        key = "upload:" + hashlib.sha1(data).hexdigest()
        if all(_image_key(key, size) in self._images for size in IMAGE_SIZES):
            return key
        picture = read()
        for size in IMAGE_SIZES:  # the original is not kept: each size is made from it now
            self._images.put(_image_key(key, size), working_tensor(picture, size))
        return key

    def add_checkpoint(self, architecture: str, source: str | Path, filename: str | None = None) -> str:
        """A user's checkpoint for a lecture architecture (say, the lecture's own ``CNN.pth``); returns its key.

        Only tensors are read (``weights_only`` or safetensors), files above ``MAX_UPLOAD_CHECKPOINT`` bytes are
        refused unread, and every key and shape is checked against the architecture: ``SettingError`` names the
        mismatch. A pickle that would run code is refused without running it.
        """
        if architecture not in list_models():
            raise SettingError(f"unknown architecture {architecture!r}; choose one of {', '.join(list_models())}")
        path = Path(source)
        suffix = Path(filename or path.name).suffix.lower()
        if suffix not in CHECKPOINT_SUFFIXES:
            raise SettingError(f"a checkpoint is a {', '.join(CHECKPOINT_SUFFIXES)} file, not {suffix or 'a file without suffix'}")
        size = path.stat().st_size
        if size > MAX_UPLOAD_CHECKPOINT:
            raise SettingError(f"the checkpoint is {size / 1e6:.1f} MB; uploads are limited to {MAX_UPLOAD_CHECKPOINT / 1e6:.0f} MB")
        data = path.read_bytes()
        key = f"own:{architecture}:{hashlib.sha1(data).hexdigest()}"
        stored = self._checkpoint_dir / f"{key.split(':')[2]}{suffix}"
        stored.write_bytes(data)
        try:
            self.engine.model(architecture, checkpoint=stored)  # reads it safely and checks every key and shape
        except CheckpointError as err:
            stored.unlink(missing_ok=True)
            raise SettingError(str(err).replace(stored.name, Path(filename or path.name).name)) from None
        self._checkpoints.put(key, stored)
        return key

    def x_true(self, image: str, size: int = WORK_SIZE) -> torch.Tensor:
        """The working image (1, 1, size, size) of a catalogue name or upload key; ``size`` one of ``IMAGE_SIZES``."""
        if size not in IMAGE_SIZES:
            raise SettingError(f"image size must be one of {', '.join(map(str, IMAGE_SIZES))}, got {size!r}")
        key = _image_key(image, size)
        if (x := self._images.get(key)) is not None:
            return x
        if _is_upload_key(image):
            raise SettingError("that uploaded image is no longer on the server; upload it again")
        return self._images.put(key, working_tensor(images.load_example(image), size))

    def measurement(self, setting: Setting) -> torch.Tensor:
        """``y_delta = K x_true + e`` for the setting, cached per (image, operator, noise, seed). ``K`` runs by FFT
        (``Blur.for_solver``, equal to the course's convolution to 1e-6; 0.9 ms instead of 34 ms at 256² on a 2-core
        AVX2 CPU); ``evaluate`` keeps the course's ``conv2d``."""
        key = (setting.image, setting.operator, setting.noise, setting.seed)
        if (y_delta := self._measurements.get(key)) is not None:
            return y_delta
        x = self.x_true(setting.image)
        y_delta = add_relative_noise(setting.operator.build().for_solver().forward(x), setting.noise, torch.Generator().manual_seed(setting.seed))
        return self._measurements.put(key, y_delta)

    # -- reconstruction -----------------------------------------------------------------------------

    def run(self, setting: Setting, with_lpips: bool = True, max_channels: int = 16, report: Report = no_progress,
            assumed: OperatorSpec | None = None) -> LabResult:  # fmt: skip
        """Reconstruct the setting's measurement with each chosen model and baseline (``report`` hears of each).

        ``assumed`` is the operator the methods are handed (default: the setting's own, the truth); the robustness
        sweep hands the nominal one while the measurement moves. ``max_channels=0`` skips the activations.
        """
        setting = setting.validated()
        x_true = self.x_true(setting.image)
        y_delta = self.measurement(setting)
        assumed = assumed or setting.operator
        K = assumed.build()
        # Only what this measurement has not been reconstructed with yet is computed: adding a model to the
        # selection runs that model alone.
        measurement_key = (setting.image, setting.operator, setting.noise, setting.seed, setting.regime, with_lpips, assumed)
        wanted = (*setting.models, "input")  # "input": the measurement itself, the table's first row
        with self._one_at_a_time(measurement_key):  # the same request from many students at once: computed once
            done = self._cached(measurement_key, wanted, with_activations=bool(max_channels))
            todo = [m for m in wanted if m not in done]
            networks = [m for m in todo if m not in BASELINES]
            baselines = [m for m in todo if m in BASELINES]
            own = {m: self._checkpoint_file(m) for m in networks if is_own_checkpoint(m)}
            recs = self.engine.reconstruct(
                y_delta, networks, baselines=baselines, operator=K, x_true=x_true, regime=setting.regime,
                with_lpips=with_lpips, checkpoints=own, architectures={m: architecture_of(m) for m in own}, report=report,
                with_activations=bool(max_channels),
            )  # fmt: skip
            compute_ms = sum(r.ms for r in recs)
            for r in recs:
                if r.image is None and not is_own_checkpoint(r.name) and self.engine.manifest.find(r.name, setting.regime) is None:
                    r.error = f"no {setting.regime} weights shipped yet"  # the engine's text speaks to CLI users
                act = activation_grid(r.activation, max_channels) if r.activation is not None else None
                r.activation = None  # the grid is what the lab keeps
                done[r.name] = (r, act)
                self._reconstructions.put((measurement_key, r.name), (r, act))
        recs = [done[m][0] for m in setting.models]
        acts = {m: done[m][1] for m in setting.models if done[m][1] is not None}
        return LabResult(
            setting=setting,
            x_true=x_true[0, 0].numpy(),
            y_delta=y_delta[0, 0].numpy(),
            kernel=K.kernel.numpy(),
            reconstructions=recs,
            measurement_metrics=done["input"][0].metrics,
            activations=acts,
            badges={name: text for name in setting.models if name not in BASELINES and (text := self.badge(name, setting))},
            device=str(self.engine.device),
            compute_ms=compute_ms,
        )

    def _cached(self, measurement_key: tuple, wanted: tuple[str, ...], with_activations: bool) -> dict[str, tuple]:
        """The cached (reconstruction, activation grid) of each wanted method; a network cached without its
        activations (an API call computes none) counts as missing when they are wanted."""
        found = {m: e for m in wanted if (e := self._reconstructions.get((measurement_key, m))) is not None}
        return {m: e for m, e in found.items() if not with_activations or m in BASELINES or e[1] is not None or e[0].image is None}

    @contextmanager
    def _one_at_a_time(self, key: tuple) -> Iterator[None]:
        """One computation at a time per measurement: a second caller waits, then finds the first's results cached."""
        with self._lock:
            lock, users = self._flights.get(key, (threading.Lock(), 0))
            self._flights[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                users = self._flights[key][1] - 1
                if users:
                    self._flights[key] = (lock, users)
                else:
                    del self._flights[key]

    def _checkpoint_file(self, key: str) -> Path:
        if (path := self._checkpoints.get(key)) is None:
            raise SettingError("that uploaded checkpoint is no longer on the server; upload it again")
        return path

    def badge(self, name: str, setting: Setting) -> str | None:
        """"trained for motion 9 @ 20°, noise 0.01" when the setting is away from what the checkpoint learned."""
        entry = self.engine.manifest.find(name, setting.regime)
        given_k = is_handed_operator(architecture_of(name))
        return None if entry is None or entry.covers(setting.operator, setting.noise, given_k) else f"trained for {entry.trained_for()}"

    def availability(self, regime: str) -> dict[str, str | None]:
        """Each architecture: ``None`` when weights of ``regime`` exist, else why not."""
        return self.engine.available(regime)


def warm_up() -> None:
    """Load what a first reconstruction needs beyond torch: scikit-image's SSIM and the LPIPS network. The app runs it
    in a background thread as its server starts (``ui.serve``); each is also done on first use."""
    metrics.warm_up()


def working_tensor(img: Image.Image | np.ndarray, size: int = WORK_SIZE) -> torch.Tensor:
    """Any picture as the lab's working image: grey, centre-cropped to a square, resized to size² (256²)."""
    x = images.to_tensor(img, size=None)  # (1, 1, H, W) grey in [0, 1]
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side]
    return images.resize(x, size).clamp(0, 1).contiguous()
