from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from recon_demo import images
from recon_demo.errors import UnknownName


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_catalogue_images_load_and_splits_are_disjoint():
    cat = images.catalogue()
    held_out, train = set(images.split_names("held_out", True)), set(images.split_names("train", True))
    assert held_out and train and not held_out & train
    assert {"astronaut", "camera", "moon"} <= held_out
    for name in ("camera", "astronaut", "phantom-0", "shepp_logan_phantom"):
        x = images.to_tensor(images.load_example(name))
        assert x.shape[:2] == (1, 1) and min(x.shape[-2:]) == 256
        assert 0 <= x.min() and x.max() <= 1
    assert len(cat) >= 20
    with pytest.raises(UnknownName, match="unknown example image"):
        images.load_example("lena")


def test_phantoms_are_deterministic_by_seed():
    a, b, c = images.ellipse_phantom(64, 5), images.ellipse_phantom(64, 5), images.ellipse_phantom(64, 6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1 and a.std() > 0.05


RGB = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.fromarray(RGB).convert("L"),
        lambda: Image.fromarray(RGB).convert("LA"),
        lambda: Image.fromarray(RGB),
        lambda: Image.fromarray(RGB).convert("RGBA"),
        lambda: Image.fromarray(RGB).convert("P"),
        lambda: Image.fromarray(RGB).convert("CMYK"),
        lambda: Image.fromarray(RGB[..., 0].astype(np.uint16) * 257).convert("I;16"),
        lambda: Image.fromarray(RGB[..., 0].astype(np.int32) * 200),
        lambda: Image.fromarray(RGB[..., 0].astype(np.float32) / 255),
        lambda: Image.fromarray(RGB[..., 0].astype(np.float32) * 40 - 7),
    ],
    ids=["L", "LA", "RGB", "RGBA", "P", "CMYK", "I;16", "I", "F", "F-outside-range"],
)
def test_every_mode_becomes_grey_in_unit_range(make):
    g = images.to_grayscale(make())
    assert g.shape == (20, 30) and g.dtype == np.float32
    assert 0 <= g.min() and g.max() <= 1 and g.std() > 0.05


def test_sixteen_bit_keeps_its_precision():
    arr = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)
    g = images.to_grayscale(Image.fromarray(arr).convert("I;16"))
    assert len(np.unique(g)) == 1024  # 8 bits would have left 256 levels
    assert g.max() == pytest.approx(65472 / 65535)


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.allclose(images.to_grayscale(rgba), 1.0)


def test_exif_orientation_is_honoured():
    img = Image.new("L", (40, 20), 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    data = _png(img, "JPEG", exif=exif.tobytes())
    assert images.to_grayscale(images.open_image(data)).shape == (40, 20)


def test_resize_follows_the_lecture():
    x = images.to_tensor(Image.new("L", (600, 300), 128), size=256)
    assert x.shape == (1, 1, 256, 512)
    assert images.to_tensor(np.zeros((10, 12), np.float32), size=None).shape == (1, 1, 10, 12)


@pytest.mark.parametrize("shape", [(300, 600), (601, 300), (256, 256), (97, 131), (512, 512), (1, 2, 333, 257)])
def test_resize_equals_torchvisions_to_the_bit(shape):
    # our resize avoids importing torchvision at start; it must stay the lecture's transform exactly
    from torchvision.transforms import functional as TF

    x = torch.rand(*shape if len(shape) > 2 else (1, *shape), generator=torch.Generator().manual_seed(0))
    assert torch.equal(images.resize(x, 256), TF.resize(x, [256], antialias=True))
    img = images.load_example("coffee")
    assert torch.equal(images.protocol_tensor(img), TF.resize(TF.to_tensor(img.convert("L")), [256], antialias=True)[None])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "not a readable image"),
        (np.random.default_rng(1).bytes(2000), "not a readable image"),
        (_png(Image.fromarray(RGB))[:80], "not a readable image"),
    ],
    ids=["empty", "png-header-only", "random-bytes", "truncated"],
)
def test_unreadable_files_give_a_clear_message(data, message):
    with pytest.raises(ValueError, match=message):
        images.open_image(data)


def test_huge_images_are_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(ValueError, match="limit is 100 pixels"):
        images.open_image(_png(Image.new("L", (20, 20))))


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("L", (8, 8), v) for v in (0, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert images.to_grayscale(images.open_image(buf.getvalue())).max() == 0


def test_scikit_images_files_read_directly_are_its_loaders_arrays():
    from skimage import data

    for name in images._SKIMAGE_FILES:
        path = images._skimage_file(name)
        assert path is not None, name
        with Image.open(path) as img:
            assert np.array_equal(np.asarray(img), getattr(data, name)()), name
