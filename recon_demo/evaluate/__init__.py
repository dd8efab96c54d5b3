"""The lecture's evaluation protocol, exactly (``python -m recon_demo evaluate``, ``cli.evaluate``).

Images are read in sorted name order with PIL ``convert("L")``, ``ToTensor`` and ``Resize(size)``;
``torch.manual_seed(seed)`` is called once before the loop; for each image, on the CPU, ``y = K x`` and
``y_delta = y + e / ||e|| · ||y|| · noise`` with ``e = torch.randn_like(y)``. Every model and baseline sees
the same ``y_delta``; outputs are clamped to [0, 1]; MSE, PSNR, SSIM (and LPIPS) are computed per image
and averaged. The table mirrors the lecture's; ``--format markdown`` adds each network's parameters and the
median milliseconds per 256² image (the README's results tables); ``--format json`` gives
``{"protocol": ..., "results": {NAME: {"mse", "psnr", "ssim", "lpips", "n", "ms", "params"}}, "per_image": ...}``.

``--task ct`` runs the same protocol on sinograms (``recon_demo.methods.ct``): ``--angles``, ``--noise`` relative
on the sinogram, CT models and the ``fbp``/``sirt`` baselines, and a data-consistency column ``dc``.

The package: ``protocol`` (the configs and the runs), ``formats`` (the tables), ``blind`` (``--blind``) and
``precision`` (``--bf16-check``); the command is ``cli.evaluate``.
"""

from __future__ import annotations

from recon_demo.evaluate.formats import FORMATS, format_markdown, format_off_course_markdown, format_table
from recon_demo.evaluate.protocol import (
    MAX_SIZE,
    OFF_COURSE,
    PIXELS_256,
    REPORTED,
    CTEvalConfig,
    EvalConfig,
    load_images,
    parse_baselines,
    parse_models,
    run_ct_evaluation,
    run_evaluation,
)

__all__ = [
    "FORMATS", "MAX_SIZE", "OFF_COURSE", "PIXELS_256", "REPORTED", "CTEvalConfig", "EvalConfig", "format_markdown",
    "format_off_course_markdown", "format_table", "load_images", "parse_baselines", "parse_models", "run_ct_evaluation",
    "run_evaluation",
]  # fmt: skip
