"""The app's named API endpoints for ``gradio_client``: ``/reconstruct``, ``/restore`` and ``/train``.

Both validate everything server-side (an API caller bypasses the sliders) and answer a bad value with a
``gr.Error`` that says what is allowed; the client sees it as an ``AppError`` with that message.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder, is_in_or_equal

from recon_demo.errors import RestoreError
from recon_demo.lab.blur import Lab
from recon_demo.lab.loss_study import LIVE_DEFAULTS, PRESETS, LossStudy, live_config
from recon_demo.lab.pictures import png_bytes
from recon_demo.lab.restore import (
    COLOUR_MODES,
    RestoreLab,
    parse_kernel,
    parse_methods,
    parse_noise,
    psf_kernel,
)
from recon_demo.lab.setting import Setting, SettingError
from recon_demo.lab.tables import TABLE_COLUMNS, metrics_rows
from recon_demo.methods.registry import RESTORE_METHODS
from recon_demo.physics.blur import OperatorSpec
from recon_demo.picture import read_picture, write_picture
from recon_demo.training import TrainingError
from recon_demo.ui._widgets import api_signature, spec_parameters


def api_image(lab: Lab, image) -> str:
    """The lab's name for the API's ``image``: a catalogue name as it is; a file that ``gradio_client`` uploaded
    (``handle_file(path)`` arrives as ``{"path": …}`` inside gradio's upload folder; any other path is refused
    unread) or, from a Python caller, a numpy array, read and checked like a page's upload
    (``Lab.add_upload``). Raises ``SettingError`` or ``ValueError`` saying what is accepted."""
    if isinstance(image, str):
        if image.startswith("upload:"):
            raise SettingError("send your own image as a file (handle_file(path)), not by its upload key")
        return image
    if isinstance(image, dict):
        path = image.get("path")
        if not isinstance(path, str) or not is_in_or_equal(path, get_upload_folder()) or not Path(path).is_file():
            raise SettingError("the image file must be sent with gradio_client's handle_file(path)")
        return lab.add_upload(path)
    if isinstance(image, np.ndarray):
        return lab.add_upload(image)
    raise SettingError(f"image must be an example's name, a file sent with handle_file(path) or an array, not {type(image).__name__}")


def reconstruct_answer(lab: Lab, image="camera", spec_cls: type = OperatorSpec, **flat) -> dict:
    """What ``/reconstruct`` answers: ``image`` as ``api_image`` takes it (a Python caller may hand a numpy array
    here), the other settings by their flat names (``lab.setting.FLAT_FIELDS``). Raises ``gr.Error`` saying what is allowed."""
    try:
        key = api_image(lab, image)
        setting = Setting.of(spec_cls, image=key, **flat).validated()
        if setting.image.startswith("upload:") and setting.image != key:
            raise SettingError("send your own image as a file (handle_file(path)), not by its upload key")
        start = time.perf_counter()
        result = lab.run(setting, max_channels=0)  # the API returns no activations: none are computed
    except (SettingError, ValueError, TypeError, OSError) as err:
        raise gr.Error(str(err)) from None
    ran = time.perf_counter()
    results = [
        {
            "name": r.name, "label": r.label, "metrics": r.metrics, "ms": round(r.ms, 2), "error": r.error, "precision": r.precision,
            "png_base64": base64.b64encode(png_bytes(r.image)).decode() if r.image is not None else None,
        }  # fmt: skip
        for r in result.reconstructions
    ]
    lab_ms, encode_ms = (ran - start) * 1000, (time.perf_counter() - ran) * 1000
    return {
        "setting": setting.to_query(),
        "device": result.device,
        "table": {"columns": list(TABLE_COLUMNS), "rows": metrics_rows(result)},
        "results": results,
        # where the server's time went: the methods themselves (cached ones count 0), the rest of the lab's work
        # (measurement, metrics, LPIPS), and the PNGs' encoding; the bench adds the round trip around it
        "server_ms": {"compute": round(result.compute_ms, 2), "lab": round(lab_ms, 2), "encode": round(encode_ms, 2)},
    }


def _uploaded(value, what: str) -> str:
    """The path of a file ``gradio_client`` uploaded (``handle_file(path)``); ``RestoreError`` for anything else."""
    path = value.get("path") if isinstance(value, dict) else None
    if not isinstance(path, str) or not is_in_or_equal(path, get_upload_folder()) or not Path(path).is_file():
        raise RestoreError(f"{what} must be sent with gradio_client's handle_file(path)")
    return path


def restore_answer(restore_lab: RestoreLab, image, methods: str = "", kernel: str = "auto", psf=None, noise: str = "auto",
                   regime: str = "general", colour: str = "channels") -> dict:  # fmt: skip
    """What ``/restore`` answers, as ``python -m recon_demo restore --format json`` does for one image (the
    restorations as base64 PNGs at the picture's size, 16-bit for grey). Raises ``gr.Error`` saying what is wrong."""
    try:
        if isinstance(image, str):  # an example's name: read as it ships
            picture, _ = restore_lab.picture(image)
        elif isinstance(image, np.ndarray):
            picture = read_picture(image)
        else:
            picture = read_picture(_uploaded(image, "the image"))
        names = parse_methods(methods)
        if psf is not None and (kernel or "auto").strip() != "auto":
            raise RestoreError("give the kernel or a psf file, not both")
        if colour not in COLOUR_MODES:
            raise RestoreError(f"colour must be one of {', '.join(COLOUR_MODES)}, got {colour!r}")
        asked = parse_kernel(kernel, allow_path=False)
        told = psf_kernel(_uploaded(psf, "the PSF") if not isinstance(psf, np.ndarray) else psf, picture.grey.shape) \
            if psf is not None else asked  # fmt: skip
        if regime not in ("course", "general"):
            raise RestoreError(f"regime must be course or general, got {regime!r}")
        result = restore_lab.restorer.restore(picture, names, told, parse_noise(noise), regime, colour)
    except (RestoreError, ValueError, TypeError, OSError) as err:
        raise gr.Error(str(err)) from None
    return {
        "kernel": {"file": "psf"} if psf is not None else result.kernel_dict(),
        "noise": round(result.noise, 5),
        "colour": result.colour_mode,
        "size": list(picture.pixels.shape[1::-1]),
        "outputs": {name: base64.b64encode(_png(pixels)).decode() for name, pixels in result.outputs.items()},
        "ms": {k: round(v, 1) for k, v in result.ms.items()},
        "dc": {k: round(v, 5) for k, v in result.dc.items()},
        "errors": result.errors,
    }


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    write_picture(buffer, pixels)
    return buffer.getvalue()


def restore_endpoint(restore_lab: RestoreLab):
    def restore(image: str | dict = "clock", methods: str = ",".join(RESTORE_METHODS), kernel: str = "auto", psf: dict | None = None,
                noise: str = "auto", regime: str = "general", colour: str = "channels") -> dict:  # fmt: skip
        """Restore a picture that is already blurred (``image``: your file sent with ``handle_file(path)``, or an
        example's name): the kernel estimated (``kernel="auto"``) or given (``motion:SIZE:ANGLE[:STYLE]``,
        ``gaussian:SIZE:VARIANCE``, or a PSF image as ``psf=handle_file(path)``), ``noise`` "auto" or δ, the comma-
        separated methods (default: the unrolled network, the general UNet and TV). Returns the kernel and its
        confidence, the noise, each restoration as a base64 PNG at the picture's size, each method's ms and data
        consistency."""
        return restore_answer(restore_lab, image, methods, kernel, psf, noise, regime, colour)

    return restore


def register(lab: Lab, restore_lab: RestoreLab | None = None) -> None:
    """Add the endpoints to the Blocks being built."""
    gr.api(reconstruct_endpoint(lab), api_name="reconstruct", concurrency_id="reconstruct")
    gr.api(restore_endpoint(restore_lab or RestoreLab(lab.engine)), api_name="restore", concurrency_id="reconstruct")
    gr.api(train_endpoint(), api_name="train", concurrency_limit=1, concurrency_id="train")


def setting_parameters(default: Setting) -> list[tuple[str, type, object]]:
    """The ``/reconstruct`` parameters, (name, type, default) in ``flat_fields`` order: the image, each field of the
    operator's spec and the setting's noise and seed (as their ``Param`` says), the models and the weights."""
    return [("image", str | dict, default.image), *spec_parameters(default.operator), *spec_parameters(default),
            ("models", str, ",".join(default.models)), ("regime", str, default.regime)]  # fmt: skip


def reconstruct_endpoint(lab: Lab, default: Setting | None = None):
    """The ``/reconstruct`` function, its signature made from ``default``'s spec (``setting_parameters``; default:
    the default ``Setting``)."""
    default = default or Setting()

    def reconstruct(**flat) -> dict:
        """Reconstruct an image blurred and noised as described, with the comma-separated models and baselines.
        ``image`` is an example's name or your own file sent with ``handle_file(path)`` (checked like a page's
        upload). ``blur="drawn"`` takes your own PSF: ``drawn`` is its code (``recon_demo.physics.kernels.encode_drawn``
        of a kernel_size × kernel_size array; the app's link carries it as ``psf``). Returns the setting, the device,
        the metrics table, each reconstruction as a base64 PNG (an error text where a model has no weights) and the
        server's time."""
        return reconstruct_answer(lab, spec_cls=type(default.operator), **flat)

    return api_signature(reconstruct, setting_parameters(default))


def train_endpoint(default: Setting | None = None):
    """The ``/train`` function: the study's own parameters, then the operator's fields and the noise (from its spec),
    then the test image."""
    default = default or Setting()
    own = [("configurations", str, "MSE,L1,SSIM"), ("custom", str, ""), ("model", str, LIVE_DEFAULTS["model"]),
             ("epochs", int, 10), ("images", int, 32), ("size", int, LIVE_DEFAULTS["size"])]  # fmt: skip
    blur = [*spec_parameters(default.operator), ("noise", float, default.noise), ("test_image", str, default.image)]

    def train(configurations: str, custom: str, model: str, epochs: int, images: int, size: int, noise: float, test_image: str,
              **operator) -> Iterator[dict]:  # fmt: skip
        """The lecture's loss study: comma-separated preset labels (MSE, L1, SSIM, MSE + 0.1 Fourier, 0.5 MSE + 0.5 L1,
        MSE + 0.2 SSIM + 0.1 Fourier) and/or one custom loss spec. Streams progress about once a second and ends
        with each configuration's metrics and loss history (what ``predict`` returns). Bounded like the Train tab
        (20 epochs, 32 images, 256²); one training at a time per server. A client that goes away stops the run."""
        presets = [p.strip() for p in configurations.split(",") if p.strip()] if configurations else []
        try:
            setting = Setting.of(type(default.operator), image=test_image, noise=noise, **operator)
            cfg = live_config(presets, custom, model, epochs, images, size, setting)
        except (TrainingError, ValueError, TypeError) as err:
            raise gr.Error(str(err)) from None
        study = LossStudy(cfg)
        shown = time.perf_counter()
        try:
            # Training happens only while this generator is advanced: when the client disconnects, gradio stops
            # advancing it, and the run stops within one step.
            for label, event in study.run(threading.Event()):
                if time.perf_counter() - shown >= 1.0:
                    shown = time.perf_counter()
                    yield {"status": "training", "configuration": label, "step": event.step, "steps": cfg.steps}
        except TrainingError as err:
            raise gr.Error(str(err)) from None
        yield study.to_json()

    return api_signature(train, own + blur)


__all__ = ["PRESETS", "api_image", "reconstruct_answer", "register", "restore_answer"]
