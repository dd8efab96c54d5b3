"""Open training data, by name: what ``train --data NAME`` reads, from files that installed packages put on disk.

Nothing here is fetched at run time, and the app, ``evaluate``'s defaults and the test suite never need these
packages: they are training-time data (``python3 -m recon_demo data``, ``cli.data``, lists them, installed or not,
with the command that installs each; ``scripts/install-training-data.sh`` installs them all). Every source yields grey images:

- ``ct-head``: a real head CT, Debian ``invesalius-examples`` (GPL-2). An InVesalius project ``.inv3`` is a
  tar.gz whose ``main.plist`` names ``matrix.dat``: int16 Hounsfield units of shape (slices, rows, columns).
  Slices are kept in HU; a window (level, width) is drawn for each crop at training time (``ct_window``).
- ``mri``: T1 MRI volumes, Debian ``mricron-data`` (BSD-3-Clause), NIfTI-1 (``read_nifti``: nibabel's reader),
  sliced along all three axes and scaled by the volume's 99.5th percentile.
- ``photos``: photographs from wallpaper packages, ``opencv-doc``'s sample data and PyPI ``sporco``'s images,
  listed file by file (``PHOTOS``) with their licence and author: drawings, renders, logos, chessboards and
  video are left out.

A slice is kept only where tissue covers at least ``MIN_TISSUE`` of it (the air around a head is no
"sharp" target). The held-out images of ``evaluate`` come from scikit-image and never enter these sources
(``tests/test_datasets.py`` compares their hashes with every installed source).

A second held-out set, ``evaluate --images heldout-medical`` (``held_out_medical``), holds the distinct CT and
MR slices that PyPI ``pydicom`` and ``pydicom-data`` ship as their test files (``MEDICAL``): real scans of
patients no training source shows, never trained on, so CT- and MR-like quality is visible here.
"""

from __future__ import annotations

import plistlib
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

MIN_TISSUE = 0.15  # a slice is kept where at least this share of its pixels is tissue
CT_TISSUE_HU = -500.0  # above this, a CT pixel is tissue (air is -1000)
CT_LEVELS = (-100.0, 400.0)  # the window level a crop draws, HU (uniform)
CT_WIDTHS = (80.0, 2000.0)  # the window width it draws, HU (log-uniform: brain 80, soft tissue 400, bone 2000)
MRI_SLICE_STEP = 2  # every second slice along each axis: neighbours 1 mm apart are nearly the same image
HELD_OUT_MEDICAL = "heldout-medical"  # evaluate --images HELD_OUT_MEDICAL: the set ``held_out_medical`` reads
MEDICAL_INSTALL = "pip install pydicom pydicom-data"

_BACKGROUNDS = "/usr/share/backgrounds"
_PLASMA = "/usr/share/wallpapers"
_OPENCV = "/usr/share/doc/opencv-doc/examples/data"


@dataclass(frozen=True)
class Photo:
    """One photograph: where its package puts it, its licence and whom it credits."""

    path: str  # absolute, or relative to a Python package's folder for "pip:PACKAGE/…"
    license: str
    author: str
    package: str  # what installs it


def _lomiri(name: str, author: str, license: str, release: str = "16.04") -> Photo:
    return Photo(f"{_BACKGROUNDS}/{name}", license, author, f"lomiri-wallpapers-{release}")


def _plasma(name: str) -> Photo:
    return Photo(f"{_PLASMA}/{name}/contents/images", "GPL-2+", f"KDE Plasma wallpaper {name}", "plasma-workspace-wallpapers")


def _mate(name: str) -> Photo:
    return Photo(f"{_BACKGROUNDS}/mate/nature/{name}", "GPL-2+", f"MATE background {name}", "mate-backgrounds")


def _opencv(name: str) -> Photo:
    return Photo(f"{_OPENCV}/{name}", "Apache-2.0 AND BSD-3-Clause", f"OpenCV sample {name}", "opencv-doc")


def _sporco(name: str) -> Photo:
    return Photo(f"pip:sporco/data/{name}", "BSD-3-Clause", f"SPORCO sample {name}", "sporco (PyPI)")


# Photographs only, chosen by looking at each file of the packages (their copyright files give the licences).
PHOTOS: tuple[Photo, ...] = (
    _lomiri("Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk", "CC-BY-SA-4.0"),
    _lomiri("Dragonfly_by_Bolly.jpg", '"Bolly"', "CC-BY-SA-4.0"),
    _lomiri("Picture_0B_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0"),
    _lomiri("Picture_1A_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0"),
    _lomiri("Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0"),
    _lomiri("aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("free_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
    _lomiri("friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("greentock_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
    _lomiri("life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt", "CC0-1.0"),
    _lomiri("sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    _lomiri("Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus", "CC-BY-SA-3.0", "20.04"),
    *(_mate(n) for n in ("Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg", "GreenMeadow.jpg",
                         "LadyBird.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg", "YellowFlower.jpg")),
    *(_plasma(n) for n in ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
                           "Kite", "OneStandsOut", "Path", "Volna", "summer_1am")),
    *(_opencv(n) for n in ("aero1.jpg", "aero3.jpg", "apple.jpg", "baboon.jpg", "building.jpg", "butterfly.jpg", "fruits.jpg",
                           "home.jpg", "leuvenA.jpg", "leuvenB.jpg", "messi5.jpg", "orange.jpg", "graf1.png", "graf3.png",
                           "basketball1.png", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "stuff.jpg")),
    *(_sporco(n) for n in ("barbara.png", "kodim23.png", "monarch.png", "sail.png", "tulips.png")),
)  # fmt: skip


@dataclass(frozen=True)
class Source:
    """A named training source: what it is, where its package puts it, its licence and how to install it."""

    name: str
    what: str
    license: str
    install: str  # the command that installs it (as root for apt)
    files: tuple[str, ...]  # what it reads (for photos: one entry per photograph)

    def paths(self) -> list[Path]:
        """The files of this source that are on disk now (a plasma wallpaper: its largest image)."""
        found = []
        for entry in self.files:
            path = _resolve(entry)
            if path is not None and path.exists():
                found.append(_largest_image(path) if path.is_dir() else path)
        return [p for p in found if p is not None]

    def installed(self) -> bool:
        return bool(self.paths())


def _resolve(entry: str) -> Path | None:
    """An absolute path, or ``pip:PACKAGE/rest`` inside an installed Python package (None when it is not)."""
    if not entry.startswith("pip:"):
        return Path(entry)
    package, _, rest = entry[4:].partition("/")
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / rest


def _largest_image(folder: Path) -> Path | None:
    images = [p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return max(images, key=lambda p: p.stat().st_size) if images else None


SOURCES: dict[str, Source] = {
    "ct-head": Source("ct-head", "a real head CT (InVesalius example, int16 HU, 108 slices of 256²)", "GPL-2",
                      "apt-get install -y invesalius-examples",
                      ("/usr/share/doc/invesalius-examples/examples/Cranium.inv3",)),  # fmt: skip
    "mri": Source("mri", "T1 MRI of one head (the ch2 template), sliced along all three axes", "BSD-3-Clause",
                  "apt-get install -y mricron-data",
                  ("/usr/share/mricron/templates/ch2.nii.gz", "/usr/share/mricron/templates/ch2better.nii.gz")),  # fmt: skip
    "photos": Source("photos", "photographs (landscapes, plants, animals, objects, streets)", "per file: CC-BY-4.0, "
                     "CC-BY-SA-3.0/4.0, CC0-1.0, GPL-2+, Apache-2.0/BSD-3-Clause (see `data --credits`)",
                     "apt-get install -y lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers "
                     "mate-backgrounds opencv-doc && pip install --no-deps sporco",
                     tuple(p.path for p in PHOTOS)),  # fmt: skip
}


# ------------------------------------------------------------------------------------------------ readers


def read_inv3(path: str | Path) -> np.ndarray:
    """The CT volume of an InVesalius ``.inv3`` project: (slices, rows, columns) in its stored dtype (HU)."""
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
        if "main.plist" not in members:
            raise ValueError(f"{path}: no main.plist (not an InVesalius project)")
        matrix = plistlib.loads(tar.extractfile(members["main.plist"]).read())["matrix"]
        name = matrix.get("filename", "matrix.dat")
        if name not in members:
            raise ValueError(f"{path}: main.plist names {name}, which is not in the archive")
        shape, dtype = tuple(int(n) for n in matrix["shape"]), np.dtype(matrix.get("dtype", "int16"))
        raw = tar.extractfile(members[name]).read()
    if len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{path}: {name} holds {len(raw)} bytes, not {shape} of {dtype}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def read_nifti(path: str | Path) -> np.ndarray:
    """A NIfTI volume (``.nii`` or ``.nii.gz``) as float32 (x, y, z), its scale slope and intercept applied: nibabel's
    reader, imported here (the training data's CLI and loader use it, never the app)."""
    import nibabel

    try:
        image = nibabel.load(str(path))
        if len(image.shape) < 3:
            raise ValueError(f"rank {len(image.shape)}")
        volume = np.asarray(image.dataobj, dtype=np.float32)
    except (nibabel.filebasedimages.ImageFileError, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path}: not a NIfTI-1 file nibabel can read ({err})") from None
    return volume.reshape(*volume.shape[:3], -1)[..., 0] if volume.ndim > 3 else volume  # a series: its first volume


# ------------------------------------------------------------------------------------------------ slices


@lru_cache(maxsize=4)
def ct_slices(path: str) -> tuple[np.ndarray, ...]:
    """The axial slices of a CT volume (float32 HU) where tissue covers at least ``MIN_TISSUE``."""
    volume = read_inv3(path).astype(np.float32)
    return tuple(s for s in volume if (s > CT_TISSUE_HU).mean() >= MIN_TISSUE)


@lru_cache(maxsize=4)
def mri_slices(path: str) -> tuple[np.ndarray, ...]:
    """Every ``MRI_SLICE_STEP``-th slice along each axis of an MRI volume, scaled to [0, 1] by its 99.5th
    percentile, where tissue (above 5 % of that) covers at least ``MIN_TISSUE``."""
    volume = read_nifti(path)
    top = float(np.percentile(volume[volume > 0], 99.5)) if (volume > 0).any() else 1.0
    volume = np.clip(volume / top, 0.0, 1.0)
    out = []
    for axis in range(3):
        for index in range(0, volume.shape[axis], MRI_SLICE_STEP):
            s = np.ascontiguousarray(np.rot90(np.take(volume, index, axis=axis)))  # head up
            if (s > 0.05).mean() >= MIN_TISSUE:
                out.append(s)
    return tuple(out)


def ct_window(hu: np.ndarray | object, level: float, width: float):
    """HU → [0, 1] through a display window (values outside it clip); works on numpy arrays and tensors."""
    low = level - width / 2
    scaled = (hu - low) / width
    return scaled.clip(0, 1)


def count(name: str) -> int:
    """How many images a source holds here (0 when it is not installed)."""
    source = SOURCES[name]
    paths = source.paths()
    if name == "ct-head":
        return sum(len(ct_slices(str(p))) for p in paths)
    if name == "mri":
        return sum(len(mri_slices(str(p))) for p in paths)
    return len(paths)


def credits() -> list[Photo]:
    """The photographs installed here, for attribution."""
    return [p for p in PHOTOS if (path := _resolve(p.path)) is not None and path.exists()]


# ------------------------------------------------------------------------------------------------ held-out medical


@dataclass(frozen=True)
class MedicalSlice:
    """One slice of the held-out medical set: its name in ``evaluate``'s tables and the file a package ships."""

    name: str
    path: str  # "pip:PACKAGE/…" (see ``_resolve``)
    what: str


# Every distinct CT and MR slice of at least 128² in pydicom's and pydicom-data's test files (MIT-licensed packages;
# each file's origin is in pydicom's data/test_files/README.txt). Left out: re-encodings of the same slice (693_*,
# MR2_*: the uncompressed one is read), examples_overlay.dcm (a crop of MR-SIEMENS-DICOM-WithOverlays.dcm), the
# 64² MR_small and emri_small series, the 16² DICOMDIR thumbnails, eCT_Supplemental.dcm (two perfusion maps, not
# anatomy) and bad_sequence.dcm (a 512² CT in JPEG Lossless, which no decoder that pydicom and Pillow bring reads).
# JPEG 2000 (one slice) is read by Pillow's OpenJPEG, which pydicom uses.
MEDICAL = (
    MedicalSlice("ct-head", "pip:data_store/data/693_UNCR.dcm", "head CT (the CQ500 collection), 512²"),
    MedicalSlice("ct-skull-base", "pip:pydicom/data/test_files/J2K_pixelrep_mismatch.dcm",
                 "head CT at the skull base, 512² (JPEG 2000)"),  # fmt: skip
    MedicalSlice("ct-abdomen", "pip:data_store/data/explicit_VR-UN.dcm", "abdominal CT (pancreas collection, TCIA), 512²"),
    MedicalSlice("ct-vertebra", "pip:pydicom/data/test_files/CT_small.dcm", "CT of a vertebra (NEMA CT1, downsized), 128²"),
    MedicalSlice("mr-abdomen", "pip:data_store/data/MR-SIEMENS-DICOM-WithOverlays.dcm", "abdominal MR (GDCM's sample), 484²"),
    MedicalSlice("mr-shoulder", "pip:data_store/data/MR2_UNCR.dcm", "shoulder MR (NEMA MR2), 1024²"),
)


def medical_missing() -> list[str]:
    """The held-out medical set's files that are not on disk here (all of them without pydicom / pydicom-data)."""
    return [m.path for m in MEDICAL if (path := _resolve(m.path)) is None or not path.exists()]


def held_out_medical(limit: int | None = None) -> list[tuple[str, Image.Image]]:
    """(name, 8-bit grey PIL image) for each slice of the held-out medical set, in ``MEDICAL``'s order; raises
    ``FileNotFoundError`` naming what is missing and the command that installs it (the set is all or nothing,
    so that its figures compare across machines)."""
    from PIL import Image

    from recon_demo import images

    missing = medical_missing()
    if missing:
        raise FileNotFoundError(f"the held-out medical set needs pydicom and pydicom-data ({MEDICAL_INSTALL}); "
                                f"missing: {', '.join(missing)}")  # fmt: skip
    out = []
    for m in MEDICAL[: limit or None]:
        pixels = np.round(images.dicom_pixels(_resolve(m.path)) * 255).astype(np.uint8)
        out.append((m.name, Image.fromarray(pixels, mode="L")))
    return out


# ------------------------------------------------------------------------------------------------ the listing


def listing(report=None) -> list[dict]:
    """Every source ``train --data`` knows, installed or not: its images here, licence and install command."""
    from recon_demo import images
    from recon_demo.progress import no_progress

    report = report or no_progress
    rows = [
        {"source": "package", "installed": True, "images": len(images.split_names("train")), "license": "scikit-image's",
         "what": "the training split of scikit-image's images (held-out ones never)", "install": "(with requirements.txt)"},
        {"source": "phantoms", "installed": True, "images": None, "license": "ours", "what": "random-ellipse phantoms, "
         "as many as --phantoms (64)", "install": "(generated)"},
    ]  # fmt: skip
    for i, (name, source) in enumerate(SOURCES.items(), start=1):
        n = count(name)
        rows.append({"source": name, "installed": n > 0, "images": n, "license": source.license, "what": source.what,
                     "install": source.install})  # fmt: skip
        report(i, len(SOURCES), name)
    missing = medical_missing()
    rows.append({"source": HELD_OUT_MEDICAL, "installed": not missing, "images": len(MEDICAL) if not missing else 0,
                 "license": "MIT (the packages; origins in pydicom's test_files/README.txt)",
                 "what": f"held out, never trained on: evaluate --images {HELD_OUT_MEDICAL} (real CT and MR slices)",
                 "install": MEDICAL_INSTALL})  # fmt: skip
    return rows

