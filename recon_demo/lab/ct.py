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

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from recon_demo.cache import BoundedCache
from recon_demo.checkpoints import CT_ANY, regime_angles
from recon_demo.lab.blur import Lab
from recon_demo.lab.setting import IMAGE_SIZES, WORK_SIZE, Setting, SettingError
from recon_demo.lab.tables import METRIC_COLUMNS, metric_cells
from recon_demo.methods import registry
from recon_demo.methods.base import Reconstruction, Unavailable, run_methods
from recon_demo.methods.ct import CT_BASELINES, ct_models, measure
from recon_demo.metrics import METRICS
from recon_demo.models import is_handed_operator, list_models, model_info
from recon_demo.physics import ct_projector, spec
from recon_demo.physics.ct import CT_NOISE, CTSpec, radon_operator
from recon_demo.physics.spec import same_as
from recon_demo.progress import Report, no_progress

CT_SIZES = IMAGE_SIZES  # the tab's image sides: the lecture's 256², and 512² as a scanner's slice
CT_TABLE_COLUMNS = ("method", *(c + " (sinogram)" if c == METRICS["dc"].heading else c for c in METRIC_COLUMNS), "ms")


@dataclass(frozen=True)
class TabCTSpec(CTSpec):
    """``CTSpec`` as the tab offers it: the image sides of ``CT_SIZES`` (the angles and the window are the core's)."""

    size: int = same_as(CTSpec, "size", default=WORK_SIZE, choices=CT_SIZES, low=min(CT_SIZES), high=max(CT_SIZES),
                        info="256²: the lecture's; 512²: a scanner's slice (about four times the time)")  # fmt: skip


@dataclass(frozen=True)
class CTSetting:
    """The CT tab's state: an image, the acquisition (a ``CTSpec``: angles, image size, FBP window), the noise and its
    seed (described as the deblurring ones). ``CTSetting.of(**flat)`` builds one from the controls' flat names, as
    ``Setting.of`` does; ``angles``, ``size`` and ``filter`` read the acquisition's."""

    image: str = "phantom-0"  # catalogue name or upload key
    acquisition: CTSpec = TabCTSpec()
    noise: float = same_as(Setting, "noise", default=CT_NOISE, unit="relative, on the sinogram", words="noise level")
    seed: int = same_as(Setting, "seed")  # the noise's seed

    @classmethod
    def of(cls, image: str = "phantom-0", spec_cls: type = TabCTSpec, **flat) -> CTSetting:
        """A setting from flat keyword values: the acquisition's fields (of ``spec_cls``) go into ``acquisition``."""
        own, acquired = spec.params(cls), spec.params(spec_cls)
        unknown = sorted(set(flat) - set(own) - set(acquired))
        if unknown:
            raise SettingError(f"unknown CT setting {', '.join(unknown)}; the settings are image, "
                               f"{', '.join([*acquired, *own])}")  # fmt: skip
        acquisition = spec_cls(**{k: v for k, v in flat.items() if k in acquired})
        return cls(image=image, acquisition=acquisition, **{k: v for k, v in flat.items() if k in own})

    @property
    def angles(self) -> int:
        return self.acquisition.angles

    @property
    def size(self) -> int:
        return self.acquisition.size

    @property
    def filter(self) -> str:
        return self.acquisition.filter

    def validated(self) -> CTSetting:
        """A copy with normalised values; ``SettingError`` says what is allowed."""
        if not isinstance(self.image, str) or not self.image:
            raise SettingError("choose an image")
        try:
            return replace(spec.validated(self), acquisition=self.acquisition.validated())
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
        self._results: BoundedCache[tuple[CTSetting, bool], CTResult] = BoundedCache(cache_size)  # (setting, with LPIPS)

    def shipped_angles(self, model: str) -> list[int]:
        """The angle counts that ``model`` has shipped CT checkpoints for."""
        manifest = self.lab.engine.manifest
        return sorted(a for e in manifest.entries if e.model == model and (a := regime_angles(e.regime)) is not None)

    def learned(self, model: str, setting: CTSetting) -> tuple[list, str | None]:
        """The FBP refiner ``model`` with its shipped CT checkpoint for the setting's angles (else the nearest), as a
        method (none when it has no weights), and a note when it is not an exact fit or cannot load."""
        available = self.shipped_angles(model)
        if not available:
            return [], f"{model_info(model).label}: no shipped CT weights yet (train them with `train --task ct`)."
        nearest = min(available, key=lambda a: (abs(a - setting.angles), -a))
        (built,) = registry.build([model], self.lab.engine, "ct", filter=setting.filter, angles=nearest)
        if isinstance(built, Unavailable):
            return [], f"{built.label}: {built.error}"
        note = None
        if nearest != setting.angles:
            note = (f"{model_info(model).label} was trained for {nearest} angles and sees {setting.angles} here: "
                    "an operator it has never met, so expect it to do worse than at its own setting.")  # fmt: skip
        return [built], note

    def run(self, setting: CTSetting, with_lpips: bool = True, report: Report = no_progress) -> CTResult:
        """Measure and reconstruct with FBP, SIRT and every CT model; ``report`` hears of the projector's first
        compilation in this process (seconds; then loaded from numba's disk cache) and of each method done."""
        setting = setting.validated()
        key = (setting, with_lpips)
        if (cached := self._results.get(key)) is not None:
            return cached
        x_true = self.lab.x_true(setting.image, setting.size)  # (1, 1, size, size)
        methods, notes = registry.build(list(CT_BASELINES), self.lab.engine, "ct", filter=setting.filter), []
        if setting.size != WORK_SIZE:
            notes.append(f"The networks were trained on {WORK_SIZE}² images and meet {setting.size}² here; FBP and SIRT "
                         "do not depend on it.")  # fmt: skip
        for model in list_models("ct"):
            built, note = self.learned(model, setting)
            methods += built
            notes += [note] if note else []
        for model in filter(is_handed_operator, ct_models()):  # handed the Radon transform: one checkpoint, any angles
            if self.lab.engine.manifest.find(model, CT_ANY) is None:
                continue  # no CT weights shipped for it
            (built,) = registry.build([model], self.lab.engine, "ct")
            if isinstance(built, Unavailable):
                notes.append(f"{built.label}: {built.error}")
            else:
                methods.append(built)
        total = len(methods) + 1
        if not ct_projector.ready():
            report(0, total, "preparing the CT projector (compiled once, then read from its cache)…")
        radon = radon_operator(x_true.shape[-1], setting.angles)
        y_delta = measure(x_true, radon, setting.noise, torch.Generator().manual_seed(setting.seed))
        report(1, total, "sinogram measured")
        recs = run_methods(methods, y_delta, radon, x_true, with_lpips=with_lpips,
                           report=lambda done, _, what: report(1 + done, total, what))  # fmt: skip
        report(total, total, "done")
        return self._results.put(key, CTResult(setting, x_true[0, 0].numpy(), y_delta[0, 0].numpy(), recs, notes))


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
