"""Images: the example catalogue, procedural phantoms, and turning any picture into the lecture's input.

The catalogue holds only images that installed packages ship and load offline (scikit-image's data
module; pydicom's CT and MR test slices; scikit-learn's two sample photographs when it is installed) and
phantoms that we generate. Each has a split: ``held_out`` images are never used in training and are what
``evaluate`` reads by default; ``held_out_medical`` (pydicom's slices) are never used in training either;
``train`` images (and phantoms from seed ``PHANTOM_TRAIN_SEED_START`` on) are for training.

Any user image becomes a grey float image in [0, 1] (``to_grayscale``), resized as the lecture does it
(the lecture's torchvision ``Resize(size)`` on the shorter side, antialiased) by ``to_tensor``.
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from recon_demo.errors import UnknownName

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
MAX_PIXELS = 40_000_000  # refuse larger images before decoding them (decompression bombs)
PHANTOM_HELD_OUT_SEEDS = (0, 1, 2, 3)  # the catalogue's phantoms: held out
PHANTOM_TRAIN_SEED_START = 1000  # training draws phantoms with seeds from here on


@dataclass(frozen=True)
class ExampleImage:
    name: str
    source: str  # where it comes from, for captions and the README
    split: str  # "train", "held_out" (evaluate's default set) or "held_out_medical" (never trained on either)
    load: Callable[[], Image.Image]


def _from_array(arr: np.ndarray) -> Image.Image:
    """An 8-bit PIL image from a package's array, as the lecture's files were written."""
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        arr = np.clip(np.round(np.asarray(arr, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


# scikit-image's data files that its loaders return unchanged: read with PIL, they give the same arrays
# (``tests/test_images.py``) without importing ``skimage.io``, which took 0.5 s of the app's first reconstruction
_SKIMAGE_FILES = {
    "astronaut": "astronaut.png", "camera": "camera.png", "moon": "moon.png", "coffee": "coffee.png", "grass": "grass.png",
    "clock": "clock_motion.png", "brick": "brick.png", "cell": "cell.png", "chelsea": "chelsea.png", "coins": "coins.png",
    "gravel": "gravel.png", "hubble_deep_field": "hubble_deep_field.jpg", "immunohistochemistry": "ihc.png",
    "page": "page.png", "retina": "retina.jpg", "rocket": "rocket.jpg", "text": "text.png",
}  # fmt: skip


def _skimage_file(name: str) -> Path | None:
    spec = importlib.util.find_spec("skimage")  # locates the package without importing it
    if name not in _SKIMAGE_FILES or spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / _SKIMAGE_FILES[name]
    return path if path.is_file() else None


def _skimage(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        path = _skimage_file(name)
        if path is not None:
            with Image.open(path) as img:
                return _from_array(np.asarray(img))
        from skimage import data

        arr = getattr(data, name)()
        if isinstance(arr, tuple):  # stereo pairs: the left view
            arr = arr[0]
        return _from_array(arr)

    return load


def _phantom(seed: int) -> Callable[[], Image.Image]:
    return lambda: _from_array(ellipse_phantom(256, seed))


_SKIMAGE_HELD_OUT = ("astronaut", "camera", "moon", "coffee", "grass", "clock")
_SKIMAGE_TRAIN = (
    "brick", "cell", "chelsea", "coins", "gravel", "hubble_deep_field", "immunohistochemistry",
    "page", "retina", "rocket", "shepp_logan_phantom", "text", "stereo_motorcycle",
)  # fmt: skip


def _optional_examples() -> list[ExampleImage]:
    """scikit-learn's sample photographs and pydicom's test slices, where those packages are installed."""
    found: list[ExampleImage] = []
    try:
        from sklearn.datasets import load_sample_image
    except ImportError:
        pass
    else:
        for name in ("china.jpg", "flower.jpg"):
            found.append(
                ExampleImage(name.split(".")[0], "scikit-learn", "train", lambda n=name: _from_array(load_sample_image(n)))
            )
    pydicom = importlib.util.find_spec("pydicom")
    if pydicom is not None:  # its own test slices, read where the package put them
        folder = Path(pydicom.submodule_search_locations[0]) / "data" / "test_files"
        for name in ("CT_small.dcm", "MR_small.dcm"):
            if (folder / name).exists():  # held out: CT_small is one of `evaluate --images heldout-medical`'s
                found.append(ExampleImage(name.split(".")[0].lower(), "pydicom", "held_out_medical",
                                          lambda p=folder / name: _dicom_to_image(p)))  # fmt: skip
    return found


def catalogue() -> dict[str, ExampleImage]:
    """Every example image available on this machine, by name."""
    entries = [ExampleImage(n, "scikit-image", "held_out", _skimage(n)) for n in _SKIMAGE_HELD_OUT]
    entries += [ExampleImage(n, "scikit-image", "train", _skimage(n)) for n in _SKIMAGE_TRAIN]
    entries += [
        ExampleImage(f"phantom-{s}", "generated (random ellipses)", "held_out", _phantom(s)) for s in PHANTOM_HELD_OUT_SEEDS
    ]
    entries += _optional_examples()
    return {e.name: e for e in entries}


def split_names(split: str, include_phantoms: bool = False) -> list[str]:
    """Catalogue names of a split, package images first; phantoms only when asked."""
    return [e.name for e in catalogue().values() if e.split == split and (include_phantoms or not e.name.startswith("phantom-"))]


def load_example(name: str) -> Image.Image:
    """A catalogue image as an 8-bit PIL image (grey, RGB or RGBA, as shipped)."""
    entries = catalogue()
    if name not in entries:
        raise UnknownName(f"unknown example image {name!r}; available: {', '.join(entries)}")
    return entries[name].load()


def ellipse_phantom(size: int = 256, seed: int = 0) -> np.ndarray:
    """A random-ellipse phantom in [0, 1], the same for the same seed on every machine.

    A bright outer body, then 6-14 inner ellipses that add or remove intensity, in the spirit of the
    Shepp-Logan phantom: smooth regions and sharp edges at many orientations, which is what a deblurring
    network must restore.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    img = np.zeros((size, size))

    def add(cx, cy, a, b, angle, value):
        c, s = math.cos(angle), math.sin(angle)
        u = ((xx - cx) * c + (yy - cy) * s) / a
        v = (-(xx - cx) * s + (yy - cy) * c) / b
        img[u**2 + v**2 <= 1] += value

    # (centre x, centre y, semi-axis a, semi-axis b, rotation, added intensity): uniform ranges
    body = ((-0.05, 0.05), (-0.05, 0.05), (0.7, 0.9), (0.75, 0.95), (0, math.pi), (0.5, 0.8))
    inner = ((-0.6, 0.6), (-0.6, 0.6), (0.03, 0.35), (0.03, 0.35), (0, math.pi), (-0.35, 0.4))
    add(*(rng.uniform(lo, hi) for lo, hi in body))
    for _ in range(rng.integers(6, 15)):
        add(*(rng.uniform(lo, hi) for lo, hi in inner))
    return np.clip(img, 0, 1).astype(np.float32)


DICOM_TOP_PERCENTILE = 99.5  # a DICOM slice maps its floor .. this percentile of its values to [0, 1]
AIR_HU = -1000.0  # the floor of a CT slice in Hounsfield units


def dicom_pixels(source) -> np.ndarray:
    """A DICOM file's slice (path or file object; a multi-frame series: its middle frame) as grey in [0, 1]:
    the stored values through the modality LUT (CT: Hounsfield units), colour and palette images to grey (ITU-R
    601), then the floor (a CT in HU: air, −1000, so the scanner's padding outside its field of view is black;
    otherwise 0, or the minimum where values go below) to the ``DICOM_TOP_PERCENTILE``-th percentile mapped to
    [0, 1], clipped; MONOCHROME1 (white is low) inverted. Refuses slices over ``MAX_PIXELS`` before decoding.
    Raises ``ValueError``."""
    try:
        import pydicom
        from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array
    except ImportError:
        raise ValueError("DICOM files need the package pydicom, which is not installed") from None
    try:
        ds = pydicom.dcmread(source)
    except Exception as err:  # pydicom raises many kinds on a damaged file
        raise ValueError(f"not a readable DICOM file ({type(err).__name__}: {err})") from None
    if "PixelData" not in ds:
        raise ValueError("this DICOM file holds no pixel data")
    rows, columns = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if rows * columns > MAX_PIXELS:
        raise ValueError(f"the image is {columns}×{rows} pixels; the limit is {MAX_PIXELS:,} pixels")
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    try:
        arr = pixel_array(ds, index=frames // 2 if frames > 1 else None)  # a series: its middle slice alone
    except Exception as err:  # a compression no installed decoder reads, or damaged pixel data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax) or "unknown"
        raise ValueError(f"the DICOM pixel data cannot be decoded here ({name}: {err})") from None
    interpretation = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if interpretation == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3 and arr.shape[-1] == 3:  # colour (pydicom gives YBR as RGB)
        arr = arr.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        floor = 0.0
    elif arr.ndim == 2:
        arr = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
        in_hu = getattr(ds, "Modality", "") == "CT" and str(getattr(ds, "RescaleType", "HU") or "HU") == "HU"
        floor = AIR_HU if in_hu and arr.min() < AIR_HU / 2 else min(0.0, float(arr.min()))
    else:
        raise ValueError(f"this DICOM file holds no image slice (pixel array of shape {arr.shape})")
    top = float(np.percentile(arr, DICOM_TOP_PERCENTILE))
    if top <= floor:
        top = float(arr.max())
    grey = np.zeros(arr.shape, np.float32) if top <= floor else np.clip((arr - floor) / (top - floor), 0.0, 1.0)
    return (1.0 - grey if interpretation == "MONOCHROME1" else grey).astype(np.float32)


def _dicom_to_image(source) -> Image.Image:
    return Image.fromarray(dicom_pixels(source), mode="F")


def _is_dicom(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def open_image(source: str | Path | bytes | Image.Image) -> Image.Image:
    """Open a path, raw bytes or a PIL image; refuse unreadable files and images over ``MAX_PIXELS``.

    Raises ``ValueError`` with a message a person can act on. Multi-frame images give their first frame;
    DICOM files give their slice as grey in [0, 1] (``dicom_pixels``).
    """
    if isinstance(source, Image.Image):
        return source
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if not data:
        raise ValueError("the file is empty")
    if _is_dicom(data[:132]):
        return _dicom_to_image(io.BytesIO(data))
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise ValueError(f"the image is {w}×{h} pixels; the limit is {MAX_PIXELS:,} pixels")
        img.seek(0)
        img.load()
    except ValueError:
        raise
    except Image.DecompressionBombError:  # PIL's own guard, for sizes far beyond ours
        raise ValueError(f"the image is far too large; the limit is {MAX_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        raise ValueError("not a readable image: the file is in no image format known here") from None
    except (OSError, SyntaxError, EOFError) as err:
        raise ValueError(f"not a readable image ({type(err).__name__}: {err})") from None
    return img


def from_array(arr: np.ndarray) -> Image.Image:
    """An array given by a Python caller as a PIL image, checked like an upload: (H, W) grey, or (H, W, 3|4)
    colour; bool, integer or float; at most ``MAX_PIXELS``. uint8 keeps its channels (transparency is composited
    like a file's); other types become grey (ITU-R 601 weights for colour; uint16 over 65535) and are read as a
    float image: in [0, 1] as they are, otherwise rescaled by their range. Raises ``ValueError`` saying what is
    accepted."""
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or 0 in arr.shape:
        raise ValueError(f"an image array is (H, W) or (H, W, 3|4), got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"an image array holds numbers, not {arr.dtype}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ValueError(f"the image is {arr.shape[1]}×{arr.shape[0]} pixels; the limit is {MAX_PIXELS:,} pixels")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.dtype == np.uint8:
        return Image.fromarray(arr)
    grey = arr.astype(np.float64) / (65535 if arr.dtype == np.uint16 else 1)
    if grey.ndim == 3:
        grey = grey[..., :3] @ np.array([0.299, 0.587, 0.114])
    if not np.isfinite(grey).any():
        raise ValueError("the image array has no finite value")
    return Image.fromarray(grey.astype(np.float32))  # mode "F": to_grayscale rescales values outside [0, 1]


def to_grayscale(img: Image.Image) -> np.ndarray:
    """A grey float32 array in [0, 1] from any PIL mode, with the EXIF orientation applied.

    Transparency is composited on white; 16-bit images keep their precision; float images outside
    [0, 1] are rescaled by their range.
    """
    img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("L"), dtype=np.float32) / 255
    if mode.startswith("I;16"):
        return np.asarray(img, dtype=np.float32) / 65535
    if mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if mode == "I" and lo >= 0 and hi <= 65535:
            arr = arr / (255 if hi <= 255 else 65535)
        elif not (lo >= 0 and hi <= 1):
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0).clip(0, 1).astype(np.float32)
    return np.asarray(img.convert("L"), dtype=np.float32) / 255


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """The lecture's ``Resize(size)``: shorter side to ``size``, bilinear with antialiasing.

    What torchvision's ``resize(x, [size], antialias=True)`` computes for a float tensor (the same output size
    rule, the same ``interpolate`` call; equal to the bit on the catalogue, ``tests/test_images.py``), without
    importing torchvision, which took 0.9 s of the app's start."""
    h, w = x.shape[-2:]
    short, long = (h, w) if h <= w else (w, h)
    new_short, new_long = size, int(size * long / short)
    out_size = (new_short, new_long) if h <= w else (new_long, new_short)
    if out_size == (h, w):
        return x
    batch = x.reshape(-1, 1, h, w)
    out = torch.nn.functional.interpolate(batch, size=out_size, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*x.shape[:-2], *out_size)


def to_tensor(img: Image.Image | np.ndarray, size: int | None = 256) -> torch.Tensor:
    """A (1, 1, H, W) float32 tensor in [0, 1]; resized on the shorter side to ``size`` unless ``None``."""
    arr = to_grayscale(img) if isinstance(img, Image.Image) else np.asarray(img, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
    return resize(x, size).clamp(0, 1) if size else x


def protocol_tensor(img: Image.Image, size: int = 256, square: bool = False) -> torch.Tensor:
    """The evaluation protocol's reading: PIL ``convert("L")``, ``ToTensor``, ``Resize(size)``; (1, 1, H, W).

    ``square=True`` then takes the central ``size``² crop (``CenterCrop(size)``), as CT's n×n geometry needs.
    """
    x = resize(torch.from_numpy(np.asarray(img.convert("L"), dtype=np.float32) / 255)[None], size)[None]
    return center_square(x) if square else x


def center_square(x: torch.Tensor) -> torch.Tensor:
    """The central square crop of a (N, C, H, W) tensor, of side ``min(H, W)``."""
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top : top + side, left : left + side]


LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601: the luminance a colour picture is restored on


def luminance(rgb: np.ndarray) -> np.ndarray:
    """The luminance (H, W) of a colour picture (H, W, 3) in [0, 1]."""
    return (np.asarray(rgb, dtype=np.float64) @ LUMA).astype(np.float32)


def with_luminance(rgb: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """A colour picture (H, W, 3) whose luminance is replaced by ``grey`` (H, W), its chroma (RGB − Y) kept."""
    return np.clip(rgb + (grey - luminance(rgb))[..., None], 0, 1).astype(np.float32)

