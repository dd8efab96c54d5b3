"""recon-demo: end-to-end neural image reconstruction, as the lecture teaches it, in a browser lab.

The core never imports gradio. Two tasks with the same parts: deblurring (``operators``, ``baselines``, ``lab``)
and computed tomography (``ct_operators``, ``ct_baselines``, ``ct_lab``); beside them ``models`` (the lecture's
architectures in a registry), ``checkpoints``, ``engine`` (GPU-aware inference), ``metrics``, ``losses``,
``activations`` (hooks, receptive fields, FLOPs), ``pictures`` and ``tables``, ``training`` (a package),
``datasets`` and ``distributed``, ``loss_study``, ``robustness``, ``evaluate``, ``bench`` and ``progress``.
The app is ``ui`` (one module per tab), launched by ``app.py``.
"""

__version__ = "0.1.0"
