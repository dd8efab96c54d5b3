"""recon-demo: end-to-end neural image reconstruction, as the lecture teaches it, in a browser lab.

The core never imports gradio: ``operators`` (blur and noise), ``models`` (the lecture's architectures
in a registry), ``checkpoints``, ``metrics``, ``losses``, ``training`` and ``loss_study``, ``inspect``
(activations, receptive fields, FLOPs), ``engine`` (GPU-aware inference), ``baselines`` (classical
deconvolution), ``images``, ``lab`` and ``robustness`` (what the app computes) and ``evaluate``. The app is
``ui`` (one module per tab), launched by ``app.py``.
"""

__version__ = "0.1.0"
