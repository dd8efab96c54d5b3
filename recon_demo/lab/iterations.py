"""The Iterations view: iterative methods run one step at a time, so that a class sees semi-convergence.

Landweber, CGLS and Richardson-Lucy (on the blur ``K``) and SIRT (on the Radon transform ``A``) regularise only by
stopping. Run on the same image at two noise levels, each iterate's PSNR against ``x_true`` rises while the
iterates fit the signal, then falls as they fit the noise; the data residual ``||K x_k − y_delta|| / ||y_delta||``
meanwhile only falls. The discrepancy principle (Morozov) stops at the first iterate whose residual reaches the
noise level — a rule that needs δ, not the ground truth. The unrolled network that knows ``K`` is a first estimate
and then a few learned steps (five for the shipped weights); its steps are drawn on the same axes.

``IterationLab.run`` computes a setting once (both noise levels, every iterate kept as an 8-bit picture for the
slider) and caches it; the tab only draws what comes back (``figure``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from matplotlib.figure import Figure

from recon_demo.cache import BoundedCache
from recon_demo.checkpoints import CT_ANY, CheckpointError
from recon_demo.lab.blur import Lab
from recon_demo.lab.setting import MAX_NOISE, MAX_SEED, Setting, SettingError, check_number
from recon_demo.methods.ct import measure as measure_sinogram
from recon_demo.methods.iterative import METHODS, IterativeMethod
from recon_demo.metrics import psnr
from recon_demo.models import model_info
from recon_demo.physics.blur import LECTURE_OPERATOR, OperatorSpec
from recon_demo.physics.ct import LECTURE_ANGLES, MAX_ANGLES, radon_operator
from recon_demo.progress import Report, no_progress

MAX_ITERATIONS = 300  # the slider's end: enough to see every method fit the noise at δ 0.01
DEFAULT_ITERATIONS = 200
NOISE_LEVELS = (0.01, 0.05)  # the two measurements: low noise (late optimum), high noise (early optimum)
DISCREPANCY_TAU = 1.05  # Morozov: stop at the first iterate with residual ≤ τ · (the noise's share of ||y_delta||)
UNROLLED = "unrolled"


@dataclass(frozen=True)
class IterationSetting:
    """The Iterations view's controls: the method, the image, the operator (a blur, or a number of CT angles), the two
    noise levels and how many iterations."""

    method: str = "landweber"  # a name of METHODS
    image: str = "camera"  # catalogue name or upload key
    operator: OperatorSpec = LECTURE_OPERATOR  # the blur (deblurring methods)
    angles: int = LECTURE_ANGLES  # the CT projections (SIRT)
    noises: tuple[float, float] = NOISE_LEVELS  # the two relative noise levels, each its own measurement
    iterations: int = DEFAULT_ITERATIONS
    seed: int = 0  # the noise's seed

    def validated(self) -> IterationSetting:
        """A normalised copy; ``SettingError`` says what is allowed."""
        if self.method not in METHODS:
            raise SettingError(f"unknown iterative method {self.method!r}; choose one of {', '.join(METHODS)}")

        noises = tuple(sorted(check_number("noise level", n, 0, MAX_NOISE) for n in self.noises))
        if len(noises) != 2:
            raise SettingError(f"give two noise levels, got {len(noises)}")
        operator, angles = self.operator, self.angles
        if METHODS[self.method].task == "deblur":  # the field the method does not use is reset: one cache entry
            try:
                operator = operator.validated()
            except ValueError as err:
                raise SettingError(str(err)) from None
            angles = LECTURE_ANGLES
        else:
            operator = LECTURE_OPERATOR
            angles = check_number("number of angles", angles, 1, MAX_ANGLES, integer=True)
        base = Setting(image=self.image, operator=operator).validated()  # the image's name, checked as Reconstruct's
        return replace(self, image=base.image, operator=operator, noises=noises,
                       iterations=check_number("iterations", self.iterations, 1, MAX_ITERATIONS, integer=True), angles=angles,
                       seed=check_number("noise seed", self.seed, 0, MAX_SEED, integer=True))  # fmt: skip

    def describe(self) -> str:
        method = METHODS[self.method]
        acquisition = self.operator.describe() if method.task == "deblur" else f"{self.angles} angles"
        return f"{method.label}, {acquisition}, {self.iterations} iterations"


@dataclass
class Trace:
    """One method run on one measurement: a PSNR and a residual per iterate, and every iterate as a picture."""

    noise: float
    psnr: np.ndarray  # (n,) dB against x_true, iterate k at index k − 1
    residual: np.ndarray  # (n,) ||K x_k − y_delta|| / ||y_delta||
    pictures: np.ndarray  # (n, H, W) uint8: each iterate clamped to [0, 1]
    noise_share: float  # δ / √(1 + δ²): the noise's share of ||y_delta|| (known from δ, not from x_true)

    @property
    def best(self) -> int:
        """The iterate with the highest PSNR (1-based): where an oracle would stop."""
        return int(np.argmax(self.psnr)) + 1

    @property
    def discrepancy(self) -> int | None:
        """Morozov's discrepancy principle (1-based): the first iterate whose residual is within τ of the noise's
        share — the stop a practitioner can compute from δ, without ``x_true``; ``None`` when never reached."""
        hits = np.flatnonzero(self.residual <= DISCREPANCY_TAU * self.noise_share)
        return int(hits[0]) + 1 if hits.size else None

    def picture(self, k: int) -> np.ndarray:
        """Iterate ``k`` (1-based, clipped to the run) as (H, W) float in [0, 1]."""
        return self.pictures[min(max(int(k), 1), len(self.pictures)) - 1].astype(np.float32) / 255


@dataclass
class IterationResult:
    setting: IterationSetting
    x_true: np.ndarray  # (H, W)
    measurements: list[np.ndarray]  # (H, W) deblurring, (angles, bins) CT: one per noise level
    traces: list[Trace]  # one per noise level, in the setting's order
    network: str | None = None  # the label of the network drawn beside, or None
    network_psnr: list[list[float]] = field(default_factory=list)  # per noise level, its iterates' PSNR
    network_residual: list[list[float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compute_s: float = 0.0


def run_trace(method: IterativeMethod, y_delta: torch.Tensor, operator, x_true: torch.Tensor, noise: float, iterations: int,
              report: Callable[[int], None] = lambda k: None) -> Trace:  # fmt: skip
    """``iterations`` steps of ``method`` on ``y_delta`` (made with relative noise ``noise``): each iterate's PSNR,
    residual and picture. ``x_true`` scores the iterates and nothing else."""
    truth = x_true[0, 0].numpy()
    y_norm = float(y_delta.norm())
    # relative noise: ||e|| = δ ||K x||, and ||y||² ≈ ||K x||² (1 + δ²) as e is independent of K x
    noise_share = noise / (1 + noise**2) ** 0.5
    scores, residuals, pictures = [], [], []
    with torch.no_grad():
        for k, x in zip(range(1, iterations + 1), method.iterates(y_delta, operator)):
            image = x[0, 0].clamp(0, 1).numpy()
            scores.append(psnr(image, truth))
            residuals.append(float((operator.forward(x) - y_delta).norm()) / max(y_norm, 1e-12))
            pictures.append(np.round(image * 255).astype(np.uint8))
            report(k)
    return Trace(noise, np.array(scores), np.array(residuals), np.stack(pictures), noise_share)


class IterationLab:
    """The Iterations view's computations on top of a ``Lab`` (its images and engine); results cached per setting."""

    def __init__(self, lab: Lab, cache_size: int = 4):
        self.lab = lab
        # each result holds 2 × iterations 8-bit pictures (256²: 26 MB at 200)
        self._results: BoundedCache[IterationSetting, IterationResult] = BoundedCache(cache_size)
        self._lock = threading.Lock()  # guards the flights
        self._flights: dict[IterationSetting, threading.Lock] = {}  # a setting being computed → its lock

    def cached(self, setting: IterationSetting) -> IterationResult | None:
        """The setting's result if it is computed (it then counts as the most recently used), else ``None``."""
        return self._results.get(setting.validated())

    def run(self, setting: IterationSetting, report: Report = no_progress) -> IterationResult:
        """Both noise levels' traces (computed once per setting: a second request for it waits for the first), and
        the unrolled network's iterates beside them."""
        setting = setting.validated()
        with self._lock:
            flight = self._flights.setdefault(setting, threading.Lock())
        try:
            with flight:
                if (hit := self.cached(setting)) is not None:
                    return hit
                return self._compute(setting, report)
        finally:
            with self._lock:
                if not flight.locked():
                    self._flights.pop(setting, None)

    def _compute(self, setting: IterationSetting, report: Report) -> IterationResult:
        start = time.perf_counter()
        method = METHODS[setting.method]
        x_true = self.lab.x_true(setting.image)  # (1, 1, 256, 256)
        total = 2 * setting.iterations
        traces, measurements, net_psnr, net_residual, notes = [], [], [], [], []
        network, label = self._network(method.task, notes)
        for i, noise in enumerate(setting.noises):
            if method.task == "deblur":
                operator = setting.operator.build().for_solver()
                y_delta = self.lab.measurement(Setting(image=setting.image, operator=setting.operator, noise=noise,
                                                       seed=setting.seed))  # fmt: skip
            else:
                operator = radon_operator(x_true.shape[-1], setting.angles)
                y_delta = measure_sinogram(x_true, operator, noise, torch.Generator().manual_seed(setting.seed))
            done = i * setting.iterations
            trace = run_trace(method, y_delta, operator, x_true, noise, setting.iterations,
                              lambda k, done=done, noise=noise: report(done + k, total, f"δ {noise:g}: iteration {k}"))  # fmt: skip
            traces.append(trace)
            measurements.append(y_delta[0, 0].numpy())
            if network is not None:
                scores, residuals = self._network_iterates(network, y_delta, operator, x_true)
                net_psnr.append(scores)
                net_residual.append(residuals)
        result = IterationResult(setting, x_true[0, 0].numpy(), measurements, traces, label if network is not None else None,
                                 net_psnr, net_residual, notes, time.perf_counter() - start)  # fmt: skip
        return self._results.put(setting, result)

    def _network(self, task: str, notes: list[str]) -> tuple[torch.nn.Module | None, str | None]:
        """The shipped unrolled network for the task (general blur weights, or the CT ones), or None with a note."""
        regime = "general" if task == "deblur" else CT_ANY
        try:
            return self.lab.engine.model(UNROLLED, regime=regime), model_info(UNROLLED).label
        except CheckpointError as err:
            notes.append(f"{model_info(UNROLLED).label} is not drawn: {err}")
            return None, None

    def _network_iterates(self, network, y_delta: torch.Tensor, operator, x_true: torch.Tensor) -> tuple[list[float], list[float]]:
        device = next(network.parameters()).device
        truth = x_true[0, 0].numpy()
        y_norm = float(y_delta.norm())
        with torch.inference_mode(), self.lab.engine.precision(network):
            steps = network.iterates(y_delta.to(device), operator)[1:]  # x_1 … x_K (x_0 is its first estimate, no step)
        steps = [x.float().cpu() for x in steps]
        with torch.no_grad():  # the residual of the iterate itself, as the classical methods'; the PSNR of it clamped
            residuals = [float((operator.forward(x) - y_delta).norm()) / max(y_norm, 1e-12) for x in steps]
        return [psnr(x[0, 0].clamp(0, 1).numpy(), truth) for x in steps], residuals


def figure(result: IterationResult, iteration: int | None = None) -> Figure:
    """PSNR (top) and residual (bottom) against the iteration, both noise levels, the best iterate and the
    discrepancy principle's stop marked, the slider's iteration as a vertical line, the network's steps beside. A
    ``Figure`` of its own, not pyplot's: pyplot's global state is not safe across the server's threads."""
    fig = Figure(figsize=(7.2, 6.6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    colours = ("#1f5fa8", "#c2410c")  # blue for the low noise, orange for the high: 4.5:1 on white
    for trace, colour in zip(result.traces, colours):
        k = np.arange(1, len(trace.psnr) + 1)
        top.plot(k, trace.psnr, color=colour, lw=2.2, label=f"δ {trace.noise:g}")
        best = trace.best
        top.plot([best], [trace.psnr[best - 1]], marker="*", ms=16, color=colour, mec="black", zorder=5)
        top.annotate(f"best: {best}", (best, trace.psnr[best - 1]), textcoords="offset points", xytext=(8, -22),
                     fontsize=12, color=colour)  # fmt: skip
        bottom.plot(k, trace.residual, color=colour, lw=2.2)
        bottom.axhline(trace.noise_share, color=colour, ls=":", lw=1.5)
        if (stop := trace.discrepancy) is not None:
            bottom.plot([stop], [trace.residual[stop - 1]], marker="v", ms=11, color=colour, mec="black", zorder=5)
    for scores, residuals, colour in zip(result.network_psnr, result.network_residual, colours):
        steps = np.arange(1, len(scores) + 1)
        top.plot(steps, scores, color=colour, ls="--", marker="o", ms=6, lw=1.5)
        bottom.plot(steps, residuals, color=colour, ls="--", marker="o", ms=6, lw=1.5)
    if result.network_psnr:
        top.plot([], [], color="black", ls="--", marker="o", ms=6, label=f"{result.network}: its learned steps")
    if iteration is not None:
        for ax in (top, bottom):
            ax.axvline(iteration, color="#444444", lw=1.2)
    top.margins(y=0.18)  # room for the best iterates' labels under the title
    top.set_ylabel("PSNR (dB)", fontsize=13)
    top.set_title(result.setting.describe(), fontsize=13)
    fig.legend(*top.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=12, frameon=False)  # clear of the curves
    bottom.set_ylabel("residual ||Kx − y|| / ||y||", fontsize=12)
    bottom.set_xlabel("iteration (log scale)   ★ best   ▼ discrepancy principle   ⋯ noise level", fontsize=12)
    bottom.set_yscale("log")
    for ax in (top, bottom):
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=12)
    fig.tight_layout(rect=(0, 0.06, 1, 1))  # room for the legend under the axes
    return fig
