"""Checkpoints: reading weights safely, checking them against an architecture, and the weights manifest.

Only tensors are ever read: ``.safetensors`` files, or ``.pth``/``.pt`` files through
``torch.load(weights_only=True)``, which refuses pickled code. A file that does not fit the chosen
architecture gives a ``CheckpointError`` naming the architecture and the offending keys.

``weights/manifest.json`` describes the checkpoints the project ships: for each, the model and its
constructor kwargs, the regime and the operator and noise it was trained for (or their ranges), the
training recipe, data and compute, the file's sha256 and the held-out metrics measured by ``evaluate``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from recon_demo.models import create_model, is_handed_operator, model_info
from recon_demo.physics.blur import LECTURE_OPERATOR, OperatorSpec
from recon_demo.physics.ranges import NOISE_SLACK, OperatorRanges

WEIGHTS_DIR = Path(os.environ.get("RECON_WEIGHTS_DIR", Path(__file__).resolve().parent.parent / "weights"))
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024  # the largest lecture model in fp32 is about 8 MB
REGIMES = ("course", "general")  # the shipped ones; a run at another fixed operator is recorded as "custom"
_CT_REGIME = re.compile(r"ct-(\d+)")  # CT checkpoints: "ct-<angles>"
_DESCRIPTION = (
    "Checkpoints trained by `python -m recon_demo train`; see README. "
    "Entries: model, regime, file, sha256, kwargs, operator, noise, recipe, data, compute, metrics."
)


CT_ANY = "ct-any"  # a CT checkpoint for every number of angles: a network handed the Radon transform itself


def ct_regime(angles: int) -> str:
    """The manifest regime of CT checkpoints trained at ``angles`` angles: ``ct-60``."""
    return f"ct-{int(angles)}"


def regime_angles(regime: str) -> int | None:
    """``ct-60`` → 60; ``None`` for a regime that is not a CT one."""
    match = _CT_REGIME.fullmatch(regime)
    return int(match.group(1)) if match else None


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit its architecture."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors``, ``.pth`` or ``.pt`` file, on the CPU.

    A ``.pth`` holding ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped. Anything but tensors
    is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path.name} is {size / 1e6:.1f} MB; checkpoints are limited to {MAX_CHECKPOINT_BYTES / 1e6:.0f} MB"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # every reader's failure becomes one readable message
        raise CheckpointError(
            f"{path.name} is not a tensor checkpoint that can be read safely ({type(err).__name__}: {err})"
        ) from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path.name} does not hold a state dict (a mapping of names to tensors)")
    return state


def load_state(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> nn.Module:
    """Load ``state`` into ``model`` (the architecture ``name``) after checking every key and shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        if wrong:
            parts.append(
                "wrong shapes " + _short([f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})" for k in wrong])
            )
        raise CheckpointError(f"this checkpoint does not fit {model_info(name).display_name} ({name}): " + "; ".join(parts))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model


def _short(items: list[str], n: int = 5) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (``{}`` for other files or none)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # unreadable: read_state_dict says why
        return {}


def load_checkpoint(name: str, path: str | Path, **kwargs) -> nn.Module:
    """Build the architecture ``name`` and load the checkpoint at ``path`` into it (eval mode).

    Without ``kwargs``, a checkpoint written by ``save_checkpoint`` for the same architecture supplies the
    constructor arguments it was trained with (say, a 16-filter CNN).
    """
    meta = read_metadata(path)
    if not kwargs and meta.get("model") == name and meta.get("kwargs"):
        try:
            kwargs = json.loads(meta["kwargs"])
        except json.JSONDecodeError:
            kwargs = {}
    try:
        model = create_model(name, **kwargs)
    except TypeError as err:
        raise CheckpointError(f"{Path(path).name}: cannot build {name} with {kwargs} ({err})") from None
    return load_state(model, read_state_dict(path), name).eval()


def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> str:
    """Write the model's weights as safetensors; returns the file's sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)
    return sha256_file(path)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ManifestEntry:
    """One shipped checkpoint, as ``weights/manifest.json`` describes it."""

    model: str  # registry name
    regime: str  # "course" (the lecture's operator), "general" (random operators) or "custom" (another fixed one)
    file: str  # path relative to the weights folder
    sha256: str
    kwargs: dict = field(default_factory=dict)  # constructor arguments
    operator: dict = field(default_factory=dict)  # the OperatorSpec trained for, or ranges for "general"
    noise: dict = field(default_factory=dict)  # e.g. {"kind": "relative", "level": 0.01} or a range
    recipe: dict = field(default_factory=dict)  # loss, optimiser, steps, batch, patch
    data: dict = field(default_factory=dict)  # training images and phantoms
    compute: dict = field(default_factory=dict)  # device, wall time
    metrics: dict = field(default_factory=dict)  # held-out metrics measured by `evaluate`
    task: str = "deblur"  # "deblur" or "ct" (then regime is ct-<angles> and operator the CT geometry)
    bf16: dict = field(default_factory=dict)  # the held-out PSNR change in bf16 (``evaluate --bf16-check``), if measured

    def path(self, weights_dir: Path | None = None) -> Path:
        return (weights_dir or WEIGHTS_DIR) / self.file

    def trained_for(self) -> str:
        """A caption such as ``motion 9 @ 20°, noise 0.01`` for badges."""
        op = self.operator
        if self.task == "ct":
            lo, hi = op.get("angle_range") or (op.get("angles"), op.get("angles"))
            angles = f"{lo} angles" if lo == hi else f"{lo} to {hi} angles"
            return f"CT, {angles}, sinogram noise {self.noise.get('level'):g}"
        if self.regime == "general" or not op:
            return "random operators (general model)"
        try:
            text = OperatorSpec.from_dict(op).describe(brief=True)
        except (TypeError, ValueError):  # a blur this version does not know (a newer manifest): say what it records
            text = ", ".join(f"{k} {v}" for k, v in op.items() if v not in ("", None))
        level = self.noise.get("level")
        return text + (f", noise {level:g}" if isinstance(level, (int, float)) else "")

    def covers(self, operator: OperatorSpec, noise: float, given_k: bool = False) -> bool:
        """Whether a blur ``operator`` at relative ``noise`` lies within what the checkpoint was trained for: its
        ranges (a general model: ``OperatorRanges.covers``) or its one operator, kernel for kernel. A network that is
        handed ``K`` (``given_k``) is not tied to a kernel: only its noise range counts."""
        noise_range = self.noise.get("range")
        if given_k:
            return noise_range is None or noise_range[0] <= noise <= noise_range[1] + NOISE_SLACK
        if self.regime == "general":
            return OperatorRanges.from_record(self.operator, self.noise).covers(operator, noise if noise_range else None)
        trained = OperatorSpec.from_dict(self.operator) if self.operator else LECTURE_OPERATOR
        mine, theirs = trained.kernel(), operator.kernel()
        same = mine.shape == theirs.shape and torch.equal(mine, theirs)
        return same and abs(noise - float(self.noise.get("level", noise))) < 1e-9


@dataclass
class Manifest:
    """The shipped checkpoints; empty until the weights are trained."""

    entries: list[ManifestEntry]
    weights_dir: Path

    @property
    def path(self) -> Path:
        return self.weights_dir / "manifest.json"

    @classmethod
    def load(cls, weights_dir: str | Path | None = None) -> Manifest:
        weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
        path = weights_dir / "manifest.json"
        if not path.is_file():
            return cls([], weights_dir)
        raw = json.loads(path.read_text())
        return cls([ManifestEntry(**e) for e in raw.get("checkpoints", [])], weights_dir)

    def upsert(self, entry: ManifestEntry) -> None:
        """Add ``entry``, replacing the one of the same model and regime, and write ``manifest.json``."""
        self.entries = [e for e in self.entries if (e.model, e.regime) != (entry.model, entry.regime)] + [entry]
        self.save()

    def save(self) -> None:
        """Write the entries, in their order, to ``manifest.json`` (atomically)."""
        raw = json.loads(self.path.read_text()) if self.path.is_file() else {"version": 1, "description": _DESCRIPTION}
        raw["checkpoints"] = [asdict(e) for e in self.entries]
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw, indent=2) + "\n")
        os.replace(tmp, self.path)

    def find(self, model: str, regime: str = "course") -> ManifestEntry | None:
        """The shipped checkpoint of ``model`` in ``regime``, or ``None`` when it has none yet. A network that is
        handed the operator (group "beyond") has one checkpoint for every blur: its general one serves both regimes."""
        if regime not in (*REGIMES, CT_ANY) and regime_angles(regime) is None:
            raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}, ct-<angles> or {CT_ANY}")
        found = next((e for e in self.entries if e.model == model and e.regime == regime), None)
        if found is None and regime == "course" and is_handed_operator(model):
            return self.find(model, "general")
        return found

    def shipped(self, regime: str = "course") -> list[str]:
        """The models with a checkpoint in ``regime``, in manifest order."""
        return [e.model for e in self.entries if e.regime == regime and self.find(e.model, regime) is e]

    def load_model(self, model: str, regime: str = "course") -> nn.Module:
        """Build ``model`` with its shipped weights of ``regime``, checking the file's sha256 first."""
        entry = self.find(model, regime)
        if entry is None:
            raise CheckpointError(f"no shipped {regime} checkpoint for {model} yet; pass {model}=PATH to use your own")
        path = entry.path(self.weights_dir)
        if not path.is_file():
            raise CheckpointError(f"{path} is listed in the manifest but missing")
        if sha256_file(path) != entry.sha256:
            raise CheckpointError(f"{path.name} does not match the sha256 in weights/manifest.json")
        return load_checkpoint(model, path, **entry.kwargs)
