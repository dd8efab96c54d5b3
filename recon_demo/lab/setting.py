"""What the Reconstruct tab is set to, as plain values: a ``Setting`` (image, operator spec, noise, seed, models,
weights), the app's bounds, the choice of methods and their labels, and ``LabResult``, what one run produced.

It lies below the lab (``lab.blur``) and the modules that draw and tabulate its results (``pictures``, ``tables``,
``inspection``), which all import it, never the other way round. The operator's fields describe themselves
(``physics.spec``): validation, the URL keys, the API's and the widgets' parameters come from there; this module
adds the setting's own fields (``noise`` and ``seed`` described the same way; image, models and regime).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from recon_demo import images, validation
from recon_demo.checkpoints import REGIMES
from recon_demo.methods import registry
from recon_demo.methods.base import Reconstruction
from recon_demo.models import list_models, model_info
from recon_demo.physics import spec
from recon_demo.physics.blur import LECTURE_NOISE, LECTURE_OPERATOR, OperatorSpec
from recon_demo.physics.kernels import MAX_APP_KERNEL
from recon_demo.physics.spec import param

WORK_SIZE = 256  # every image is centre-cropped to a square and resized to this side, as the lecture's slices
IMAGE_SIZES = (WORK_SIZE, 512)  # the sides an image is kept at: 512² for CT at the scanner's resolution
MAX_KERNEL = MAX_APP_KERNEL  # the app's largest kernel (the core allows 63; beyond 31 a 256² image is mostly border)
MAX_NOISE = 0.2  # the app's largest relative noise level
MAX_SEED = 2**31 - 1
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")
MAX_UPLOAD_CHECKPOINT = 32_000_000  # bytes; the largest lecture model is about 8 MB in fp32


class SettingError(ValueError):
    """A setting the lab refuses; the message says what is allowed."""


def network_choices() -> list[str]:
    """The deblurring networks: the lecture's seven, then beyond the lecture the unrolled network that knows K."""
    return registry.networks("deblur")


def model_choices() -> list[str]:
    """What the model selector offers: the networks (``network_choices``), then the classical baselines."""
    return registry.choices("deblur")


def choice_label(name: str) -> str:
    if is_own_checkpoint(name):
        return f"{model_info(architecture_of(name)).label} (your checkpoint)"
    return registry.label(name)


def check_number(name: str, value, lo: float, hi: float, integer: bool = False) -> float | int:
    """``validation.check_number`` raising ``SettingError``: what the app's controls and the API are checked with."""
    return validation.check_number(name, value, lo, hi, integer, SettingError)


@dataclass(frozen=True)
class Setting:
    """One state of the Reconstruct tab: an image, the operator ``K`` (an ``OperatorSpec``), the noise, the models.

    The ``/reconstruct`` API, the tabs and the URL use flat keyword names: the operator's fields beside this
    class's other fields (``flat_fields``). ``Setting.of(**flat)`` builds a setting from them and ``flat()`` gives
    them back, so a new operator parameter is declared once, in its spec.
    """

    image: str = "camera"  # a catalogue name, or "upload:<sha1>" for an uploaded image
    operator: OperatorSpec = LECTURE_OPERATOR  # the blur: type, odd size ≤ MAX_KERNEL, angle, variance, kernel style
    noise: float = param(LECTURE_NOISE, "Noise level δ", float, low=0, high=MAX_NOISE, step=0.001, unit="relative")
    seed: int = param(0, "Noise seed", int, low=0, high=MAX_SEED)  # the noise draw
    models: tuple[str, ...] = ("cnn", "unet", "wiener")  # architectures and baselines, in display order
    regime: str = "course"  # which shipped weights: "course" or "general"

    @classmethod
    def of(cls, spec_cls: type = OperatorSpec, **flat) -> Setting:
        """A setting from flat keyword values: the operator's fields (of ``spec_cls``) go into ``operator``."""
        names = flat_fields(spec_cls)
        unknown = sorted(set(flat) - set(names))
        if unknown:
            raise SettingError(f"unknown setting {', '.join(unknown)}; the settings are {', '.join(names)}")
        op = {k: flat.pop(k) for k in spec.params(spec_cls) if k in flat}
        return cls(operator=spec_cls(**op), **flat)  # (OperatorSpec's defaults are the lecture's operator)

    def flat(self) -> dict:
        """The setting as flat keyword values, in ``flat_fields`` order (the API's and the controls' names)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "operator"} | asdict(self.operator)
        return {name: values[name] for name in flat_fields(type(self.operator))}

    def moved(self, **flat) -> Setting:
        """A copy with some flat values changed (``moved(angle=45)``)."""
        return Setting.of(type(self.operator), **(self.flat() | flat))

    def validated(self) -> Setting:
        """A normalised copy; raises ``SettingError`` with what is allowed."""
        if self.regime not in REGIMES:
            raise SettingError(f"regime must be one of {', '.join(REGIMES)}, got {self.regime!r}")
        try:
            operator = self.operator.validated()
            own = spec.validated(self)  # noise and seed, by their Param
        except ValueError as err:
            raise SettingError(str(err)) from None
        models = tuple(self.models.split(",") if isinstance(self.models, str) else self.models or ())
        models = tuple(dict.fromkeys(m.strip() for m in models if m and m.strip()))  # drop repeats, keep order
        unknown = [m for m in models if m not in model_choices() and not is_own_checkpoint(m)]
        if unknown:
            raise SettingError(f"unknown model {', '.join(map(repr, unknown))}; choose from {', '.join(model_choices())}")
        if not (self.image in images.catalogue() or _is_upload_key(self.image)):
            raise SettingError(f"unknown image {self.image!r}; choose an example ({', '.join(images.catalogue())}) or upload one")
        return replace(own, operator=operator, models=models)

    @staticmethod
    def query_keys(spec_cls: type = OperatorSpec) -> dict[str, str]:
        """URL key → flat name: short names a teacher can type (``?size=9&angle=20``), from each field's ``Param``."""
        return {"image": "image", **spec.url_keys(spec_cls), **spec.url_keys(Setting), "models": "models", "regime": "regime"}

    def to_query(self) -> dict[str, str]:
        """The URL's parameters (a drawn kernel's code only while the blur is drawn)."""
        values = self.flat()
        values["models"] = ",".join(self.models)
        return {key: f"{values[name]:g}" if isinstance(values[name], float) else str(values[name])
                for key, name in self.query_keys(type(self.operator)).items() if values[name] != ""}  # fmt: skip

    @classmethod
    def from_query(cls, query: dict[str, str], base: Setting | None = None) -> tuple[Setting, list[str]]:
        """The setting a URL describes, starting from ``base`` (default: the default setting; a lesson's link starts
        from the lesson's); parameters that are unknown or invalid are dropped with a warning."""
        setting, warnings = base or cls(), []
        keys = cls.query_keys(type(setting.operator))
        for key, value in sorted(query.items(), key=lambda item: item[0] == "blur"):  # blur last: "drawn" needs its psf
            name = keys.get(key)
            if name is None:
                warnings.append(f"ignored the unknown URL parameter {key!r}")
                continue
            candidate = setting.moved(**{name: _parse_query_value(name, value)})
            try:
                candidate.validated()
            except SettingError as err:
                warnings.append(f"ignored {key}={value!r}: {err}")
                continue
            setting = candidate
        return setting.validated(), warnings


def flat_fields(spec_cls: type = OperatorSpec) -> tuple[str, ...]:
    """The flat names of a setting, in the order of the API's parameters and the Reconstruct tab's controls."""
    return ("image", *spec.params(spec_cls), "noise", "seed", "models", "regime")


FLAT_FIELDS = flat_fields()


def _parse_query_value(name: str, value: str):
    if name == "models":
        return tuple(v for v in value.split(",") if v)
    return value  # validated() converts numbers and reports bad ones


def is_own_checkpoint(key: str) -> bool:
    """``own:<architecture>:<sha1>``: a checkpoint a user uploaded for one of the lecture's architectures."""
    parts = key.split(":")
    return len(parts) == 3 and parts[0] == "own" and parts[1] in list_models() and len(parts[2]) == 40


def architecture_of(name: str) -> str:
    """The registry name a model choice is built as (itself, or an uploaded checkpoint's architecture)."""
    return name.split(":")[1] if is_own_checkpoint(name) else name


def _is_upload_key(key: str) -> bool:
    return key.startswith("upload:") and len(key) == len("upload:") + 40


@dataclass
class LabResult:
    """What one ``Lab.run`` produced."""

    setting: Setting
    x_true: np.ndarray  # (H, W) in [0, 1]
    y_delta: np.ndarray  # (H, W), may leave [0, 1] by the noise
    kernel: np.ndarray  # (k, k)
    reconstructions: list[Reconstruction]
    measurement_metrics: dict[str, float | None] = field(default_factory=dict)  # y_delta clamped, against x_true
    activations: dict[str, np.ndarray] = field(default_factory=dict)  # name → first-layer grid in [0, 1]
    badges: dict[str, str] = field(default_factory=dict)  # name → "trained for …" where the setting differs
    device: str = "cpu"
    compute_ms: float = 0.0  # the methods run for this call (cached reconstructions count 0), milliseconds

    def by_name(self, name: str) -> Reconstruction | None:
        return next((r for r in self.reconstructions if r.name == name), None)
