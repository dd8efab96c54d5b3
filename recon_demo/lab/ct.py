"""The CT tab's computations: one image, its noisy sinogram, and FBP, SIRT and the learned refinement of it.

``CTSetting`` is what the tab's controls say (image, number of angles, noise, FBP window, seed);
``CTLab.run`` measures and reconstructs, with every method's metrics against the true image and its data
consistency ``||A x_rec − y_delta|| / ||y_delta||``, now measured in the sinogram's domain. Images come from
the app's ``Lab`` (the catalogue and the session's uploads, 256² squares). The learned refiner of the FBP is the
shipped CT checkpoint trained for the chosen number of angles or, when there is none, for the nearest one, with a
note saying so: a network trained for 60 views meets 45 as an operator it has never seen. The unrolled network,
handed the Radon transform itself, has one CT checkpoint (``ct-any``) for every number of angles.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from recon_demo.checkpoints import CT_ANY, CheckpointError, ct_regime, regime_angles
from recon_demo.lab.blur import Lab
from recon_demo.lab.setting import IMAGE_SIZES, WORK_SIZE, Setting, SettingError
from recon_demo.lab.tables import metric_cells
from recon_demo.methods.base import FBPNetwork, Reconstruction, network_method, run_methods
from recon_demo.methods.ct import CT_BASELINES, ct_models, measure, method, takes_sinogram
from recon_demo.models import list_models, model_info
from recon_demo.physics import ct_projector, spec
from recon_demo.physics.ct import CT_NOISE, CTSpec, radon_operator
from recon_demo.physics.spec import same_as
from recon_demo.progress import Report, no_progress

MAX_ANGLES = 180  # the tab's slider; the core allows 360
CT_SIZES = IMAGE_SIZES  # the tab's image sides: the lecture's 256², and 512² as a scanner's slice
CT_TABLE_COLUMNS = ("method", "MSE", "PSNR (dB)", "SSIM", "LPIPS", "data consistency (sinogram)", "ms")


@dataclass(frozen=True)
class CTSetting:
    """The CT tab's controls, one field each; the acquisition's fields are described as ``CTSpec``'s (one
    description of each: validation and the tab's widgets follow), the noise and its seed as the deblurring ones."""

    image: str = "phantom-0"  # catalogue name or upload key
    angles: int = same_as(CTSpec, "angles", high=MAX_ANGLES)  # projections in [0, 180°); the tab stops at 180
    noise: float = same_as(Setting, "noise", default=CT_NOISE, unit="relative, on the sinogram", words="noise level")
    filter: str = same_as(CTSpec, "filter")  # the FBP window
    seed: int = same_as(Setting, "seed")  # the noise's seed
    size: int = same_as(CTSpec, "size", default=WORK_SIZE, choices=CT_SIZES, low=min(CT_SIZES), high=max(CT_SIZES),
                        info="256²: the lecture's; 512²: a scanner's slice (about four times the time)")  # fmt: skip

    def validated(self) -> CTSetting:
        """A copy with normalised values; ``SettingError`` says what is allowed."""
        if not isinstance(self.image, str) or not self.image:
            raise SettingError("choose an image")
        try:
            return spec.validated(self)
        except ValueError as err:
            raise SettingError(str(err)) from None


@dataclass
class CTResult:
    setting: CTSetting
    x_true: np.ndarray  # (size, size)
    sinogram: np.ndarray  # (angles, bins): y_delta
    reconstructions: list[Reconstruction]
    notes: list[str] = field(default_factory=list)


class CTLab:
    """CT for the app, on top of a ``Lab`` (its images, its engine); results are cached per setting."""

    def __init__(self, lab: Lab, cache_size: int = 8):
        self.lab = lab
        self._results: OrderedDict[tuple[CTSetting, bool], CTResult] = OrderedDict()  # (setting, with LPIPS)
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def shipped_angles(self, model: str) -> list[int]:
        """The angle counts that ``model`` has shipped CT checkpoints for."""
        manifest = self.lab.engine.manifest
        return sorted(a for e in manifest.entries if e.model == model and (a := regime_angles(e.regime)) is not None)

    def learned(self, model: str, angles: int) -> tuple[torch.nn.Module | None, str | None]:
        """The shipped CT checkpoint for ``angles`` (else the nearest), and a note when it is not an exact fit."""
        available = self.shipped_angles(model)
        if not available:
            return None, f"{model_info(model).label}: no shipped CT weights yet (train them with `train --task ct`)."
        nearest = min(available, key=lambda a: (abs(a - angles), -a))
        try:
            network = self.lab.engine.model(model, regime=ct_regime(nearest))
        except CheckpointError as err:
            return None, f"{model_info(model).label}: {err}"
        note = None
        if nearest != angles:
            note = (f"{model_info(model).label} was trained for {nearest} angles and sees {angles} here: "
                    "an operator it has never met, so expect it to do worse than at its own setting.")  # fmt: skip
        return network, note

    def run(self, setting: CTSetting, with_lpips: bool = True, report: Report = no_progress) -> CTResult:
        """Measure and reconstruct with FBP, SIRT and every CT model; ``report`` hears of the projector's first
        compilation in this process (seconds; then loaded from numba's disk cache) and of each method done."""
        setting = setting.validated()
        key = (setting, with_lpips)
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        x_true = self.lab.x_true(setting.image, setting.size)  # (1, 1, size, size)
        methods, notes = [method(name, setting.filter) for name in CT_BASELINES], []
        if setting.size != WORK_SIZE:
            notes.append(f"The networks were trained on {WORK_SIZE}² images and meet {setting.size}² here; FBP and SIRT "
                         "do not depend on it.")  # fmt: skip
        for model in list_models("ct"):
            network, note = self.learned(model, setting.angles)
            if note:
                notes.append(note)
            if network is not None:
                methods.append(FBPNetwork(model, model_info(model).label, self.lab.engine, network, setting.filter))
        for model in filter(takes_sinogram, ct_models()):  # handed the Radon transform: one checkpoint, any angles
            if self.lab.engine.manifest.find(model, CT_ANY) is None:
                continue  # no CT weights shipped for it
            try:
                network = self.lab.engine.model(model, regime=CT_ANY)
            except CheckpointError as err:
                notes.append(f"{model_info(model).label}: {err}")
                continue
            methods.append(network_method(model, model_info(model).label, self.lab.engine, network))
        total = len(methods) + 1
        if not ct_projector.ready():
            report(0, total, "preparing the CT projector (compiled once, then read from its cache)…")
        radon = radon_operator(x_true.shape[-1], setting.angles)
        y_delta = measure(x_true, radon, setting.noise, torch.Generator().manual_seed(setting.seed))
        report(1, total, "sinogram measured")
        recs = run_methods(methods, y_delta, radon, x_true, with_lpips=with_lpips,
                           report=lambda done, _, what: report(1 + done, total, what))  # fmt: skip
        report(total, total, "done")
        result = CTResult(setting, x_true[0, 0].numpy(), y_delta[0, 0].numpy(), recs, notes)
        with self._lock:
            self._results[key] = result
            while len(self._results) > self._cache_size:
                self._results.popitem(last=False)
        return result


def ct_rows(result: CTResult) -> list[list[str]]:
    """The metrics table, best PSNR first."""
    rows = []
    for r in sorted(result.reconstructions, key=lambda r: -r.metrics["psnr"]):
        rows.append([r.label, *metric_cells(r.metrics), f"{r.ms:.0f}"])
    return rows


def sinogram_picture(sinogram: np.ndarray, width: int = 360) -> np.ndarray:
    """The sinogram as an 8-bit picture in the textbook's orientation: detector bins down, angles across
    (0° to 180°, each angle a column stretched to fill ``width``), scaled from its minimum to its maximum."""
    y = np.asarray(sinogram, dtype=np.float64).T  # (bins, angles)
    lo, hi = float(y.min()), float(y.max())
    y = (y - lo) / (hi - lo) if hi > lo else np.zeros_like(y)
    columns = np.minimum((np.arange(width) * y.shape[1]) // width, y.shape[1] - 1)
    return np.round(y[:, columns] * 255).astype(np.uint8)
