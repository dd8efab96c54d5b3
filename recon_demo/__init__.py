"""recon-demo: end-to-end neural image reconstruction, as the lecture teaches it, in a browser lab.

Two tasks with the same parts, in neighbouring folders: deblurring and computed tomography. From the bottom up:
``physics/`` (the operators ``K``: ``blur`` with its kernels, ``ct`` with its projector, ``noise``, and the specs
that describe them), ``models/`` (the lecture's architectures and the unrolled network, one file per family, in a
registry), ``methods/`` (everything that reconstructs, as ``method(y_delta, operator) -> x_rec``: the classical
baselines of each task, the networks, one loop that runs, times and scores them), ``metrics`` and ``losses``,
``checkpoints`` (tensors-only loading, the weights manifest), ``serving/`` (the GPU-aware engine and its batching),
``evaluate/`` (the lecture's protocol, blind and bf16 checks), ``training/`` (config, data, loop, torchrun),
``lab/`` (what each tab computes, as plain values), ``bench``, and small helpers (``images``, ``datasets``,
``activations``, ``progress``, ``validation``, ``cache``: the one bounded, thread-safe cache). ``cli/`` holds the
command-line tools, one file per command (``python -m recon_demo COMMAND``); ``ui/`` is the Gradio app, one module
per tab, launched by ``app.py``. Only ``ui/`` imports gradio; ``pyproject.toml`` ([tool.importlinter]) checks who
may import whom.
"""

__version__ = "0.1.0"
