#!/usr/bin/env bash
# Install every open training source that `python3 -m recon_demo data` lists (training-time only: the app,
# evaluate and the tests never need them), and the held-out medical set that `evaluate --images heldout-medical`
# reads (never trained on). Debian packages with apt (run as root), the PyPI ones with pip.
# Afterwards `python3 -m recon_demo data` shows each source installed, with its image count and licence.
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    invesalius-examples mricron-data \
    lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers mate-backgrounds opencv-doc
python3 -m pip install -q --no-deps sporco
python3 -m pip install -q pydicom pydicom-data  # pip install pydicom pydicom-data: the held-out medical set
python3 -m recon_demo data
