"""The About tab: what the architectures, metrics and operator are, in our own words. The tables come from
the registries, so a new model, metric or loss shows up here by itself."""

from __future__ import annotations

import gradio as gr

from recon_demo.lab.tables import count_parameters_of
from recon_demo.losses import LOSSES
from recon_demo.metrics import METRICS
from recon_demo.models import list_models, model_info

WHEN_TO_USE = {
    "cnn": "A baseline: three layers see only 7×7 pixels, too little to undo a 9-pixel motion blur.",
    "rescnn": "Same size, but it only learns the correction to y_delta: easier to train, degrades more gracefully.",
    "unet": "The strongest default: pooling widens the view to the whole image, skip connections keep the detail.",
    "resunet": "UNet with residual blocks: deeper without training trouble; about as good as UNet here.",
    "attunet": "UNet whose skips are gated by attention: it learns where detail matters; slightly more parameters.",
    "unetpp": "Nested skips between every level: a quarter of UNet's parameters for similar quality.",
    "vit": "Attention between 8×8 patches: global from the first layer, but data-hungry and quadratic in the number of patches.",
    "unrolled": "Beyond the lecture: when K is known (measured, or drawn). One checkpoint serves every blur, and its data "
                "steps keep K x_rec close to y_delta; it is only as good as the K it is handed.",
}

METRIC_TEXT = {
    "mse": "mean squared error against the ground truth.",
    "psnr": "10·log10(1 / MSE) in dB; +3 dB halves the MSE.",
    "ssim": "structural similarity of local means, contrasts and correlations (7×7 windows); 1 is identical.",
    "lpips": "a learned perceptual distance (AlexNet features); closer to what a person notices.",
    "dc": "data consistency ‖K x_rec − y_delta‖ / ‖y_delta‖: does the reconstruction explain the measurement?",
}


def _row(*cells) -> str:
    """A markdown table row; a ``|`` inside a cell (as in "Mean |FFT difference|") is escaped, not a column."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def architectures_table() -> str:
    rows = ["| architecture | parameters | what it is | when to use it |", "|---|---|---|---|"]
    for name in list_models() + list_models("beyond"):
        info = model_info(name)
        rows.append(_row(f"{info.label} (`{name}`)", f"{count_parameters_of(name):,}", info.description, WHEN_TO_USE.get(name, "")))
    return "\n".join(rows)


def metrics_table() -> str:
    rows = ["| metric | better | meaning |", "|---|---|---|"]
    for name, metric in METRICS.items():
        rows.append(_row(metric.label, "higher" if metric.higher_is_better else "lower", METRIC_TEXT.get(name, "")))
    return "\n".join(rows)


def losses_table() -> str:
    return "\n".join(["| loss | meaning |", "|---|---|"] + [_row(f"`{name}`", info.description) for name, info in LOSSES.items()])


def build() -> None:
    gr.Markdown(f"""
### The problem
A camera shakes or a lens is out of focus: the measurement is `y_delta = K x_true + e`. `K` blurs (a motion
streak of a given length and angle, or a Gaussian spot); `e` is noise whose size is a fraction δ of the
blurred image's norm, as in the lecture. Blur removes fine detail (the kernel's Fourier magnitude shows
which frequencies vanish), so undoing it divides by almost-zero numbers and amplifies the noise: the
problem is *ill-posed*. Classical methods (Wiener, Richardson-Lucy, TV) know `K` and regularise;
end-to-end networks learn the inverse from examples and never see `K` at all.

### The architectures (the lecture's final comparison)
{architectures_table()}

### The metrics
{metrics_table()}

### The caveat of end-to-end methods
A network maps `y_delta` to an image it finds plausible; nothing forces `K x_rec` to match `y_delta`. Check
the data-consistency column. Networks also degrade when the noise level or the operator differs from
training, or when test images differ from training images: the lecture's CT-trained CNN barely helps on
photographs. The Robustness tab shows it, and the ⚠ badge marks a checkpoint used away from its training
operator. *General* weights, trained over many random operators, are meant to soften exactly this; the
Reconstruct tab says which architectures have them yet.

### Beyond the lecture: a network that knows the operator
The lecture ends by pointing at the next step, putting `K` inside the network. *Unrolled (knows K)* alternates
a small learned denoiser `D_k` with an exact data step, `x_k = argmin ‖K x − y_delta‖² + λ_k ‖x − D_k(x_(k−1))‖²`
(solved with `K` and `Kᵀ` by conjugate gradients), five times: learned half-quadratic splitting, as in MoDL and
USRNet. It is handed the kernel like Wiener and TV, so one checkpoint works for any blur, a drawn one too, and
Inspect shows its estimates `x_0 … x_5`. What it costs: 2.3 times a UNet's time (in float32: its denoisers in bf16,
as it was trained, would cost 0.07 dB, more than the app allows), and a wrong `K` misleads it
(Robustness: hand the methods that use K the nominal kernel).

### Computed tomography (CT tab)
In CT the measurement is a sinogram `y_delta = A x_true + e`: for each angle, the sums of the image along
parallel rays (the Radon transform `A`). It does not live in the image's domain, so a network cannot simply
"clean it up". The classical inverse is filtered back-projection (FBP): sharpen each projection with a ramp
filter and smear it back across the image. With few angles FBP leaves streaks; SIRT iterates
`x ← x + C Aᵀ R (y − A x)` to fit the data instead. The learned model here takes the lecture's second
route: "first a crude reconstruction, then a learned refinement", a Residual UNet that corrects the FBP.
Data consistency is then measured on the sinogram, `‖A x_rec − y_delta‖ / ‖y_delta‖`.

### Losses (Train tab)
{losses_table()}

### Credits
The architectures, the operator conventions and the evaluation protocol follow a university course's lecture
notes on end-to-end reconstruction. The images come from scikit-image and pydicom (and scikit-learn when
installed), plus phantoms generated here. Nothing is downloaded at run time.
""", elem_id="about_text")
