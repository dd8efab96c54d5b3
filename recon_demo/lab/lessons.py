"""Lessons: one-click presets that walk a class through the lecture, each a setting, a tab and two lines of text.

A teacher picks one in the app's "Lesson" menu (or opens its link, ``?lesson=one-operator``): the Reconstruct
controls take the lesson's setting, the app shows the lesson's tab and its explanation. The order is the lecture's:
the blur and why inverting it is ill-posed, the first networks, the UNet family, the classical methods beside them,
the operator a network was trained for, the loss, CT; then, beyond the lecture, a network that is handed ``K``, a
photo that is already blurred, iterations that must stop early, CT from back-projection to FBP, and fine-tuning
without ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recon_demo.lab.setting import Setting

TABS = ("reconstruct", "inspect", "iterations", "train", "robustness", "ct", "about")


@dataclass(frozen=True)
class Lesson:
    """One preset: what the controls are set to, which tab opens, and what to look at."""

    key: str  # its name in links: ?lesson=<key>
    title: str  # the menu's text
    tab: str  # the tab that opens (``TABS``)
    text: str  # two lines: what to look at, and why it happens
    values: dict = field(default_factory=dict)  # the Reconstruct tab's setting, by flat names (``Setting.of``)
    sweep: str | None = None  # Robustness: the parameter to vary
    errors: bool = False  # Reconstruct: show the error maps
    measured: bool = False  # Reconstruct: the image is already blurred (restored as it is, the kernel estimated)

    def setting(self) -> Setting:
        """The lesson's setting, validated."""
        return Setting.of(**self.values).validated()


LESSONS: dict[str, Lesson] = {
    lesson.key: lesson
    for lesson in (
        Lesson("ill-posed", "1. The blur, and why undoing it is ill-posed", "inspect",
               "In Inspect, the kernel's Fourier magnitude shows the frequencies the blur destroys. Wiener divides by them: "
               "at δ = 0.05 the noise it amplifies is what you see in Reconstruct.",
               {"models": ("wiener", "rl"), "noise": 0.05}),
        Lesson("cnn-rescnn", "2. The first networks: CNN and ResCNN", "reconstruct",
               "Same three layers, same 9,857 parameters; ResCNN learns only the correction y_delta → x_true. "
               "Compare the two in the table, and their first layers below the images.",
               {"models": ("cnn", "rescnn")}),
        Lesson("unet-family", "3. The UNet family", "reconstruct",
               "Pooling lets a UNet see the whole blur: every variant gains several dB over the CNN. Residual blocks, "
               "attention gates and nested skips change little here; look at the parameter column.",
               {"models": ("cnn", "unet", "resunet", "attunet", "unetpp", "vit")}),
        Lesson("classical", "4. TV and Wiener beside the networks", "reconstruct",
               "Wiener and TV are handed the exact kernel; the networks must infer it from examples. TV's edges are "
               "sharp but its textures flat: compare the error maps and the LPIPS column.",
               {"models": ("unet", "wiener", "tv")}, errors=True),
        Lesson("one-operator", "5. Trained for one operator: change the angle", "robustness",
               "A course network learned motion 9 @ 20° only: as the angle moves away the UNets fall by about 8 dB by 45°, "
               "course and general weights alike, so random blurs in training did not make the UNet robust here; only the "
               "small CNN's general weights hold up (at 90° the course CNN falls below the measurement). Wiener, handed the "
               "true K, stays level.",
               {"models": ("cnn", "unet", "wiener")}, sweep="angle"),
        Lesson("loss", "6. The loss decides what the network learns", "train",
               "Train the same small residual CNN with MSE, L1 and SSIM (about a minute on a laptop): the MSE loss wins "
               "on MSE and PSNR, the SSIM loss on SSIM while its PSNR falls below the measurement's, and L1 lies between: "
               "what a network learns is what its loss rewards.",
               {"models": ("cnn",)}),
        Lesson("ct", "7. Computed tomography", "ct",
               "Fewer angles, more streaks: FBP shows them, SIRT smooths them, and the network trained on FBPs "
               "removes them. Move the angles slider to 20.",
               {"models": ("cnn",)}),
        Lesson("knows-k", "8. Beyond the lecture: a network that knows K", "reconstruct",
               "A centred blur at 60° that no course network was trained for: the end-to-end networks fail (⚠), the "
               "unrolled network is handed K like TV, and its data steps keep it consistent.",
               {"models": ("unet", "unrolled", "tv"), "angle": 60.0, "kernel_size": 11, "kernel_style": "centered"}),
        Lesson("real-photo", "9. A real blurry photo: no ground truth, no kernel", "reconstruct",
               "scikit-image's clock was photographed while the camera moved sideways. The kernel is estimated from the "
               "picture itself (see its Fourier stripes); the end-to-end UNet barely changes it, the unrolled network and "
               "TV handed the estimate undo most of the streak, and the arcs they leave show where the estimate is off.",
               {"image": "clock", "models": ("unet", "unrolled", "tv"), "regime": "general"}, measured=True),
        Lesson("stop-early", "10. Iterations: why iterative methods stop early", "iterations",
               "Landweber fits the measurement a little more at every step: the PSNR rises, peaks (★) and falls as the "
               "noise is fitted, while the residual only falls. At δ 0.05 the peak comes within ten steps and two hundred "
               "lose about 8 dB; at δ 0.01 it comes ten times later. Try CGLS: the same, faster.",
               {"models": ("unrolled", "tv")}),
        Lesson("fbp-steps", "11. CT step by step: back-projection, the ramp, FBP", "ct",
               "Below the results: the plain back-projection is blurred as 1/r, the ramp filter takes the low frequencies "
               "down, and FBP comes out sharp. Click the sinogram to see a point's ray, the image to see a pixel's "
               "sinusoid; try the window presets on the linked FBP.",
               {"models": ("cnn",)}),
        Lesson("no-ground-truth", "12. Fine-tuning without ground truth", "train",
               "Scroll to Fine-tune without ground truth and press it (about two minutes): from measurements alone the "
               "general ResCNN gains about 1.3 dB on camera at motion 15 @ 70°, near the 1.6 dB of the run with ground "
               "truth; measurement consistency alone (mc) gains far less.",
               {"models": ("rescnn",)}),
    )
}  # fmt: skip
