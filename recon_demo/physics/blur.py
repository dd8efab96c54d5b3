"""The blur operator: how a measurement ``y_delta = K x_true + e`` is made from a kernel.

The kernels and the table of blur kinds live in ``physics.kernels``; ``Blur`` turns a kernel into the operator ``K``
with ``forward`` and ``adjoint`` (``SceneBlur``: the same for a scene that goes on past the frame); noise is a
separate step applied to ``K x`` (``physics.noise``). The conventions are the course library's (IPPy): ``K`` is a
cross-correlation with zero padding (``conv2d(x, kernel, padding="same")``), and the lecture's noise is relative to
the norm of ``K x``. ``OperatorSpec`` is the plain description of a blur that the CLI, the engine and the UI pass
around: its fields describe themselves (``physics.spec``), its kind's row builds and names it, and it reads and
writes its own text form (``motion:9:20:ippy``). The general regime's ranges are ``physics.ranges``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F

from recon_demo.physics.kernels import (
    BLUR_KINDS,
    BLUR_NAMES,
    DRAWN,
    KERNEL_STYLES,
    MAX_APP_KERNEL,
    blur_kind,
    text_forms,
    trained_kinds,
)
from recon_demo.physics.spec import defaults, number_text, param, params, validated

BLUR_TYPES = trained_kinds()  # the blurs the general regime trains on by default (motion, gaussian: ``BlurKind.trained``)
ALL_BLURS = BLUR_NAMES  # every kind of the table (``physics.kernels.BLUR_KINDS``), read live
# From this kernel side on, K and Kᵀ run by FFT (the same zero-padded correlation, equal to 1e-6): measured on a
# 2-core CPU, a batch of 8 96² crops with one 25×25 kernel each took 24 ms as a grouped convolution, 1.5 ms by
# FFT; at 9×9 the convolution was faster. The lecture's 9×9 operator keeps the course's exact conv2d.
FFT_MIN_SIDE = 15


class Blur:
    """The blur operator ``K``: zero-padded cross-correlation with a fixed odd kernel.

    ``forward`` is the course's ``conv2d(x, kernel, padding="same")``; ``adjoint`` correlates with the
    kernel flipped in both axes, so ``<K x, y> = <x, Kᵀ y>`` holds exactly. Inputs are batches
    ``(N, 1, H, W)``; the result follows the input's device and dtype. ``Blur.per_image`` stacks several
    operators into one that blurs image ``i`` of a batch with kernel ``i`` (a training batch of the general
    regime, handed to a network that knows ``K``).
    """

    def __init__(self, kernel: torch.Tensor, solver: bool = False):
        if kernel.ndim not in (2, 3) or kernel.shape[-1] != kernel.shape[-2] or kernel.shape[-1] % 2 == 0:
            raise ValueError(f"a blur kernel must be square with an odd side, got shape {tuple(kernel.shape)}")
        self.kernel = kernel.detach().clone()  # (k, k), or (N, k, k): one per image
        self.solver = solver  # see ``for_solver``
        self._transfers: dict[tuple, np.ndarray] = {}  # for_solver's kernel transforms, per (image size, flip, dtype)

    def for_solver(self) -> Blur:
        """The same operator for a solver that applies K and Kᵀ dozens of times in one call (the unrolled network's
        data steps): on the CPU, where no gradient is asked of its input, it runs by scipy's single-threaded FFT
        (equal to 1e-5) and keeps the kernel's transform. Measured on a 2-core CPU at 256²: the unrolled network
        cost the same either way on a quiet machine, and less by FFT on a loaded one (1.42 against 1.91 times the
        UNet) and with two requests at once; torch's own FFT was as fast alone, but its thread teams contend when
        two requests run it (2.3 times the time)."""
        return self if self.solver else Blur(self.kernel, solver=True)

    @classmethod
    def per_image(cls, blurs: list[Blur]) -> Blur:
        """One operator for a batch: image ``i`` blurred by ``blurs[i]`` (kernels zero-padded to the largest
        side, which leaves a centred odd kernel's correlation unchanged)."""
        side = max(b.kernel.shape[-1] for b in blurs)
        kernels = []
        for b in blurs:
            pad = (side - b.kernel.shape[-1]) // 2
            kernels.append(F.pad(b.kernel, (pad, pad, pad, pad)))
        return cls(torch.stack(kernels))  # (N, k, k)

    def _weight(self, x: torch.Tensor, flip: bool) -> torch.Tensor:
        k = self.kernel.flip(-2, -1) if flip else self.kernel
        k = k.to(device=x.device, dtype=x.dtype)
        return k[:, None] if k.ndim == 3 else k[None, None]  # (N, 1, k, k) or (1, 1, k, k)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected a batch of grey images (N, 1, H, W), got shape {tuple(x.shape)}")
        if self.kernel.ndim == 3 and x.shape[0] != self.kernel.shape[0]:
            raise ValueError(f"this operator has {self.kernel.shape[0]} kernels, one per image; got {x.shape[0]} images")

    def _correlate(self, x: torch.Tensor, flip: bool) -> torch.Tensor:
        self._check_input(x)
        if self.kernel.shape[-1] == 1:  # a 1×1 kernel scales: exactly, on every path (the identity stays the identity)
            return x * self._weight(x, flip)
        if self.solver and x.device.type == "cpu" and not x.requires_grad:
            return self._correlate_scipy(x, flip)
        if self.kernel.shape[-1] >= FFT_MIN_SIDE:
            return self._correlate_fft(x, flip)
        weight = self._weight(x, flip)
        if weight.shape[0] == 1:
            return F.conv2d(x, weight, padding="same")
        # One kernel per image: the batch becomes the channels of a grouped correlation.
        n, _, h, w = x.shape
        return F.conv2d(x.reshape(1, n, h, w), weight, padding="same", groups=n).reshape(n, 1, h, w)

    def _correlate_fft(self, x: torch.Tensor, flip: bool) -> torch.Tensor:
        # A correlation is a convolution with the flipped kernel; zero-padding both to H + k − 1 makes the circular
        # convolution of the FFT the linear one, whose centre H × W is the "same" correlation.
        n, _, h, w = x.shape
        k = self.kernel.shape[-1]
        kernel = self.kernel if flip else self.kernel.flip(-2, -1)
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # no half-precision FFT on the CPU
        kernel = kernel.to(device=x.device, dtype=dtype).reshape(-1, k, k)  # (1 or N, k, k)
        size = (h + k - 1, w + k - 1)
        full = torch.fft.irfft2(torch.fft.rfft2(x[:, 0].to(dtype), s=size) * torch.fft.rfft2(kernel, s=size), s=size)
        c = k // 2
        return full[:, c : c + h, c : c + w].to(x.dtype)[:, None]  # (N, 1, H, W)

    def _correlate_scipy(self, x: torch.Tensor, flip: bool) -> torch.Tensor:
        from scipy import fft  # imported on the first solver call, not at the app's start

        n, _, h, w = x.shape
        k = self.kernel.shape[-1]
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # as _correlate_fft's
        # any size from H + k − 1 on gives the linear correlation; pocketfft's fast lengths (factors 2, 3, 5)
        # run faster: 270 instead of 264 for 256² and 9×9, 10 % less time
        size = (fft.next_fast_len(h + k - 1, real=True), fft.next_fast_len(w + k - 1, real=True))
        transfer = self._transfers.get((size, flip, dtype))
        if transfer is None:  # the zero-padded product of _correlate_fft, on the larger fast size
            kernels = (self.kernel if flip else self.kernel.flip(-2, -1)).to(dtype).reshape(-1, k, k).numpy()
            transfer = fft.rfft2(kernels, s=size)  # (1 or N, H', W'/2 + 1)
            self._transfers[(size, flip, dtype)] = transfer  # one operator sees one or two image sizes
        full = fft.irfft2(fft.rfft2(x[:, 0].detach().to(dtype).numpy(), s=size) * transfer, s=size)
        c = k // 2
        return torch.from_numpy(np.ascontiguousarray(full[:, c : c + h, c : c + w])).to(x.dtype)[:, None]  # (N, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``K x``."""
        return self._correlate(x, flip=False)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Kᵀ y``."""
        return self._correlate(y, flip=True)

    __call__ = forward


class SceneBlur:
    """``K`` for a scene that goes on past the frame (a photograph): the unknown ``x`` is the scene on a canvas
    ``margin`` pixels larger on each side, and ``K x`` is its blur seen through the frame, the zero-padded blur of
    the canvas cropped to the frame's centre. For ``margin`` ≥ the kernel's half side that crop is exactly what a
    camera records (no zero padding reaches it); ``adjoint`` embeds the frame in the canvas and correlates with
    the flipped kernel, so ``<K x, y> = <x, Kᵀ y>`` holds. A solver starts from ``start(y_delta)``, the measurement
    extended by replicating its edge, and ``crop`` takes the frame back out of its answer."""

    EXTRA = 4  # pixels of canvas beyond the kernel's half side (``around``)

    def __init__(self, blur: Blur, margin: int):
        if margin < blur.kernel.shape[-1] // 2:
            raise ValueError(f"a scene's margin must be at least the kernel's half side ({blur.kernel.shape[-1] // 2})")
        self.blur, self.margin = blur, int(margin)

    @classmethod
    def around(cls, blur: Blur) -> SceneBlur:
        """The scene of ``blur``: a canvas the kernel's half side and ``EXTRA`` pixels wider on each side."""
        return cls(blur, blur.kernel.shape[-1] // 2 + cls.EXTRA)

    @property
    def kernel(self) -> torch.Tensor:
        return self.blur.kernel

    def for_solver(self) -> SceneBlur:
        return SceneBlur(self.blur.for_solver(), self.margin)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """The frame (N, 1, H, W) of a canvas (N, 1, H + 2 margin, W + 2 margin)."""
        m = self.margin
        return x[..., m : x.shape[-2] - m, m : x.shape[-1] - m]

    def start(self, y_delta: torch.Tensor) -> torch.Tensor:
        """A first canvas: ``y_delta`` extended by replicating its edge."""
        m = self.margin
        return F.pad(y_delta, (m, m, m, m), mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.crop(self.blur.forward(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        m = self.margin
        return self.blur.adjoint(F.pad(y, (m, m, m, m)))

    __call__ = forward


@dataclass(frozen=True)
class OperatorSpec:
    """A blur described by plain values, as the CLI flags and the UI controls give it. Each field says what it is
    (``spec.Param``): validation, the URL, the widgets, the API, the CLI flags and the training ranges follow."""

    blur: str = param("motion", "Blur", str, choices=ALL_BLURS, flags=("--blur", "--operator"), train=BLUR_TYPES,
                      train_name="blurs")  # fmt: skip
    kernel_size: int = param(9, "Kernel size", int, low=1, high=MAX_APP_KERNEL, odd=True, step=2, unit="px", url="size",
                             train=(3, 15), train_flags=("--kernel-sizes",))  # fmt: skip  (odd side of the kernel)
    angle: float = param(20.0, "Motion angle", float, low=-360, high=360, slider_low=0, slider_high=180, step=1, unit="°",
                         applies_to=("motion",), train=(0.0, 180.0), train_flags=("--angles",), period=180.0,
                         info="ippy (the lecture's) changes every few degrees; centered with every degree")  # fmt: skip
    variance: float = param(1.0, "Gaussian variance", float, low=0.05, high=20.0, slider_low=0.1, step=0.1, unit="px²",
                            applies_to=("gaussian",), train=(0.5, 4.0), train_flags=("--variances",))  # fmt: skip
    kernel_style: str = param("ippy", "Kernel style", str, choices=KERNEL_STYLES, url="style", applies_to=("motion",),
                              train=KERNEL_STYLES, train_name="kernel_styles", train_flags=("--kernel-styles", "--styles"),
                              info="ippy: the course library's kernel; centered: a symmetric segment")  # fmt: skip
    radius: float = param(3.0, "Defocus radius", float, low=1.0, high=15.0, step=0.5, unit="px", applies_to=("defocus",),
                          words="defocus radius",
                          info="an out-of-focus lens: a disk; the kernel size must hold it (2 ⌈radius − ½⌉ + 1)")  # fmt: skip
    drawn: str = param("", "Drawn PSF", str, url="psf", applies_to=(DRAWN,), widget=False)  # encode_drawn's code

    def validated(self) -> OperatorSpec:
        """A checked copy (every field against its ``Param``, then its kernel built); a free-text field that does not
        apply to the blur (a drawing's code while the blur is not drawn) is cleared. ``ValueError`` says what is
        allowed."""
        spec = validated(self)
        unused = {name: defaults(type(self))[name] for name, p in params(self).items()
                  if p.kind is str and not p.choices and p.applies_to and spec.blur not in p.applies_to}  # fmt: skip
        spec = replace(spec, **unused)
        spec.kernel()
        return spec

    def kernel(self) -> torch.Tensor:
        """The kernel this spec describes (its kind's builder); raises ``ValueError`` with a readable message."""
        return blur_kind(self.blur).build(self)

    def build(self) -> Blur:
        """The operator ``K``."""
        return Blur(self.kernel())

    def describe(self, brief: bool = False) -> str:
        """A short caption such as ``motion 9 @ 20° (ippy)`` (``brief``: the badge's ``motion 9 @ 20°``); a kernel of
        size 1 is the identity, whatever its blur."""
        if self.is_identity():
            return "identity (kernel size 1)"
        kind = blur_kind(self.blur)
        return (kind.brief or kind.caption)(self) if brief else kind.caption(self)

    def text(self) -> str:
        """The spec's text form, which ``parse`` reads back: ``motion:9:20:ippy``, ``gaussian:9:1``."""
        kind = blur_kind(self.blur)
        values = [getattr(self, name) for name in kind.written()]
        return ":".join([self.blur, *map(number_text, values)])

    @classmethod
    def parse(cls, text: str, **fallbacks) -> OperatorSpec:
        """The spec of a text form (``text``): ``KIND:SIZE:FIELD…`` in the order of its kind's ``written()`` fields,
        validated; an optional field left out takes ``fallbacks`` (those of the kind's fields) or the spec's default.
        ``ValueError`` says the forms."""
        forms = text_forms()
        parts = [s.strip() for s in str(text).strip().split(":")]
        kind = BLUR_KINDS.get(parts[0])
        if kind is None:
            raise ValueError(f"{text!r} is not a blur: write {forms}")
        named = kind.written()
        if not len(named) - kind.optional <= len(parts) - 1 <= len(named):
            given = len(parts) - 1
            raise ValueError(f"{text!r} has {given} value{'s' * (given != 1)} after {kind.name!r}: write {kind.grammar()}")
        described = params(cls)
        values = {}
        for name, raw in zip(named, parts[1:]):
            if described[name].kind is str:
                values[name] = raw
                continue
            try:
                values[name] = float(raw)
            except ValueError:
                raise ValueError(f"{text!r}: the {described[name].named(name)} must be a number, got {raw!r}; "
                                 f"write {kind.grammar()}") from None  # fmt: skip
            if described[name].kind is int and values[name].is_integer():
                values[name] = int(values[name])
        fallbacks = {name: value for name, value in fallbacks.items() if name in kind.text_fields}  # only this kind's
        if kind.size_of:  # the side follows from the fields, once they are what their Param allows
            values |= {name: described[name].check(name, values[name]) for name in kind.text_fields}
            values["kernel_size"] = kind.size_of(values)
        return cls(**({"blur": kind.name} | fallbacks | values)).validated()

    def answer(self) -> dict:
        """The spec as a JSON answer says it (``restore``, ``/restore``): every field a person sets, ``None`` where its
        blur does not use it (a motion's variance)."""
        return {name: getattr(self, name) if not p.applies_to or self.blur in p.applies_to else None
                for name, p in params(self).items() if p.widget}  # fmt: skip

    def is_identity(self) -> bool:
        """A 1×1 kernel: every blur of size 1 is the single tap 1, the measurement is the image (plus noise)."""
        return self.kernel_size == 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> OperatorSpec:
        """The spec a manifest or URL records (manifests before the rename say ``style`` for ``kernel_style``)."""
        values = dict(values)
        if "style" in values:
            values["kernel_style"] = values.pop("style")
        return cls(**{f: values[f] for f in OPERATOR_FIELDS if f in values})


LECTURE_OPERATOR = OperatorSpec(blur="motion", kernel_size=9, angle=20.0, variance=1.0, kernel_style="ippy")
LECTURE_NOISE = 0.01


OPERATOR_FIELDS = tuple(f.name for f in fields(OperatorSpec))  # blur, kernel_size, angle, variance, kernel_style, drawn
