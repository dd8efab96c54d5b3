"""recon-demo: end-to-end neural image reconstruction, as the lecture teaches it, in a browser lab.

The core never imports gradio: ``operators`` (blur and noise), ``models`` (the lecture's architectures
in a registry), ``checkpoints``, ``metrics``, ``inspect`` (activations, receptive fields, FLOPs),
``engine`` (GPU-aware inference), ``baselines`` (classical deconvolution), ``images`` and ``evaluate``.
"""

__version__ = "0.1.0"
