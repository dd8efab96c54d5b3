from __future__ import annotations

import base64
import math
import zlib

import numpy as np
import pytest
import torch

from recon_demo.physics.blur import FFT_MIN_SIDE, Blur, OperatorSpec
from recon_demo.physics.kernels import drawing_to_kernel, drawn_kernel, encode_drawn, gaussian_kernel, motion_kernel
from recon_demo.physics.noise import add_relative_noise

KERNELS = {
    "ippy-9-20": lambda: motion_kernel(9, 20),
    "ippy-7-45": lambda: motion_kernel(7, 45),
    "ippy-15-133": lambda: motion_kernel(15, 133),
    "centered-9-20": lambda: motion_kernel(9, 20, "centered"),
    "centered-5-90": lambda: motion_kernel(5, 90, "centered"),
    "gaussian-7-2": lambda: gaussian_kernel(7, 2.0),
    "delta": lambda: motion_kernel(1, 0),
}


def taps(kernel: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(int(i) for i in ij) for ij in torch.nonzero(kernel)]


def test_ippy_kernel_9_20_matches_course_library():
    k = motion_kernel(9, 20)
    assert taps(k) == [(2, 0), (2, 1), (3, 2), (3, 3), (4, 4), (4, 5), (5, 6), (5, 7)]
    assert torch.allclose(k[k > 0], torch.full((8,), 1 / 8))


def test_ippy_kernel_7_45_is_the_truncated_diagonal():
    assert taps(motion_kernel(7, 45)) == [(i, i) for i in range(6)]


@pytest.mark.parametrize("size", [0, 2, 8, -3, 2.5, float("nan"), "nine", 65])
def test_bad_kernel_sizes_are_refused(size):
    with pytest.raises(ValueError, match="kernel size"):
        motion_kernel(size, 20)


@pytest.mark.parametrize("angle", [float("nan"), float("inf")])
def test_non_finite_angles_are_refused(angle):
    with pytest.raises(ValueError, match="angle"):
        motion_kernel(9, angle)


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="kernel style"):
        motion_kernel(9, 20, "box")


@pytest.mark.parametrize("size", [3, 9, 15])
@pytest.mark.parametrize("angle", [0, 20, 45, 77.5, 90, 133])
def test_centered_kernel_is_centred_normalised_and_symmetric(size, angle):
    k = motion_kernel(size, angle, "centered").double()
    assert k.sum().item() == pytest.approx(1, abs=1e-6)
    assert (k >= 0).all()
    idx = torch.arange(size, dtype=torch.float64)
    c = (size - 1) / 2
    assert (k.sum(1) * idx).sum().item() == pytest.approx(c, abs=1e-5)  # row centroid
    assert (k.sum(0) * idx).sum().item() == pytest.approx(c, abs=1e-5)  # column centroid
    assert torch.equal(motion_kernel(size, angle + 180, "centered"), motion_kernel(size, angle, "centered"))


def test_centered_kernel_follows_the_angle():
    horizontal = motion_kernel(9, 0, "centered")
    assert horizontal[4].sum().item() == pytest.approx(1, abs=1e-6)  # all mass on the middle row
    vertical = motion_kernel(9, 90, "centered")
    assert vertical[:, 4].sum().item() == pytest.approx(1, abs=1e-5)


def test_gaussian_kernel_is_the_course_formula():
    k = gaussian_kernel(5, 1.5).double()
    ax = torch.arange(5, dtype=torch.float64) - 2
    expected = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / 3)
    assert torch.allclose(k, expected / expected.sum(), atol=1e-7)
    with pytest.raises(ValueError, match="variance"):
        gaussian_kernel(5, 0)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (3, 1, 17, 40)])
def test_adjointness(name, shape):
    K = Blur(KERNELS[name]())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    y = torch.randn(shape, generator=g, dtype=torch.float64)
    lhs = (K.forward(x) * y).sum()
    rhs = (x * K.adjoint(y)).sum()
    assert abs(lhs - rhs) / abs(lhs) < 1e-5


def test_forward_is_the_course_conv2d(device):
    k = motion_kernel(9, 20)
    x = torch.rand(2, 1, 40, 33, device=device)
    expected = torch.nn.functional.conv2d(x, k.to(device)[None, None], padding="same")
    out = Blur(k).forward(x)
    assert out.device == x.device and out.dtype == x.dtype
    assert torch.allclose(out, expected)


@pytest.mark.parametrize("size", [FFT_MIN_SIDE, 25, 63])
def test_large_kernels_by_fft_are_the_same_correlation(size, device):
    k = motion_kernel(size, 33, "centered")
    x = torch.rand(2, 1, 40, 57, device=device, dtype=torch.float64)
    expected = torch.nn.functional.conv2d(x, k.to(device, torch.float64)[None, None], padding="same")
    out = Blur(k).forward(x)
    assert out.device == x.device and out.dtype == x.dtype
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    y = torch.rand_like(x)
    assert abs(float((out * y).sum() - (x * Blur(k).adjoint(y)).sum())) < 1e-9


def test_the_solver_operator_is_the_same_correlation_by_scipy_where_no_gradient_is_asked():
    kernels = [motion_kernel(9, 20), torch.stack([motion_kernel(9, 20), motion_kernel(5, 70, "centered").new_zeros(9, 9)])]
    kernels[1][1, 2:7, 2:7] = motion_kernel(5, 70, "centered")
    for kernel in kernels:
        K, S = Blur(kernel), Blur(kernel).for_solver()
        assert S.solver and not K.solver and S.for_solver() is S
        x = torch.rand(2, 1, 40, 57, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(S.forward(x), K.forward(x), atol=1e-10, rtol=0)
        torch.testing.assert_close(S.adjoint(x), K.adjoint(x), atol=1e-10, rtol=0)
        assert S.forward(x.float()).dtype == torch.float32
    assert len(S._transfers) == 3  # K and Kᵀ in float64, K in float32: kept for the next call
    x = torch.rand(1, 1, 24, 24, requires_grad=True)  # a gradient is asked: the convolution, as before
    S = Blur(motion_kernel(9, 20)).for_solver()
    S.forward(x).sum().backward()
    torch.testing.assert_close(x.grad, Blur(motion_kernel(9, 20)).adjoint(torch.ones_like(x)), atol=1e-6, rtol=0)
    assert not S._transfers


@pytest.mark.parametrize("sizes", [(3, 9, 5), (9, 25, 15)])
def test_per_image_kernels_blur_each_image_with_its_own(sizes):
    blurs = [OperatorSpec("motion", s, 30.0 * i).build() for i, s in enumerate(sizes)]
    K = Blur.per_image(blurs)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 30, 41, generator=g, dtype=torch.float64)
    y = torch.rand(3, 1, 30, 41, generator=g, dtype=torch.float64)
    for i, b in enumerate(blurs):
        torch.testing.assert_close(K.forward(x)[i : i + 1], b.forward(x[i : i + 1]), atol=1e-6, rtol=0)
        torch.testing.assert_close(K.adjoint(y)[i : i + 1], b.adjoint(y[i : i + 1]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="one per image"):
        K.forward(x[:2])


def test_blur_refuses_bad_shapes():
    with pytest.raises(ValueError, match="odd"):
        Blur(torch.ones(4, 4))
    with pytest.raises(ValueError, match="grey images"):
        Blur(motion_kernel(3, 0)).forward(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("delta", [0.0, 0.01, 0.1])
def test_relative_noise_has_the_requested_level_per_image(delta):
    y = torch.rand(4, 1, 32, 32) * torch.tensor([1.0, 0.1, 5.0, 2.0]).view(4, 1, 1, 1)
    y_delta = add_relative_noise(y, delta, torch.Generator().manual_seed(1))
    ratio = (y_delta - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)
    assert torch.allclose(ratio, torch.full((4,), delta), atol=1e-6)


def test_relative_noise_uses_the_global_rng_without_generator():
    y = torch.rand(1, 1, 16, 16)
    torch.manual_seed(123)
    e = torch.randn_like(y)
    torch.manual_seed(123)
    expected = y + e / e.norm() * y.norm() * 0.01
    assert torch.allclose(add_relative_noise(y, 0.01), expected, atol=1e-7)


def test_generators_make_noise_reproducible():
    y = torch.rand(2, 1, 16, 16)
    a = add_relative_noise(y, 0.05, torch.Generator().manual_seed(7))
    b = add_relative_noise(y, 0.05, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, y)


@pytest.mark.parametrize("level", [-0.1, float("nan"), float("inf")])
def test_bad_noise_levels_are_refused(level):
    with pytest.raises(ValueError):
        add_relative_noise(torch.rand(1, 1, 8, 8), level)


def test_operator_spec_builds_and_describes():
    spec = OperatorSpec()
    assert torch.equal(spec.kernel(), motion_kernel(9, 20))
    assert spec.describe() == "motion 9 @ 20° (ippy)"
    assert OperatorSpec("gaussian", 7, variance=2).describe() == "gaussian 7, variance 2"
    with pytest.raises(ValueError, match="unknown blur"):
        OperatorSpec("box").kernel()


def test_a_drawing_becomes_a_normalised_kernel_and_a_short_code():
    drawing = np.full((248, 248, 4), 255, dtype=np.uint8)
    drawing[..., 3] = 0  # transparent ground
    drawing[120:128, 20:228] = (0, 0, 0, 255)  # one horizontal black stroke across the middle
    ink = drawing_to_kernel(drawing, 15)
    assert ink.shape == (15, 15) and ink[7].sum() > 0 and ink[:6].sum() == ink[9:].sum() == 0
    code = encode_drawn(ink)
    assert len(code) < 60 and code.replace("-", "").replace("_", "").isalnum()  # fits a link as it is
    k = drawn_kernel(code, 15)
    assert k.shape == (15, 15) and abs(float(k.sum()) - 1) < 1e-6 and float(k[7].sum()) > 0.99
    spec = OperatorSpec("drawn", 15, drawn=code)
    assert spec.describe() == "drawn 15×15" and torch.equal(spec.build().kernel, k)
    grey = np.full((62, 62), 255, dtype=np.uint8)  # dark strokes on white, no alpha: the same rule
    grey[30:32, 5:57] = 0
    torch.testing.assert_close(drawn_kernel(encode_drawn(drawing_to_kernel(grey, 15)), 15), k, atol=0.02, rtol=0)


@pytest.mark.parametrize(
    "code, size, message",
    [("", 9, "no drawn kernel yet"), ("%%%", 9, "cannot be read"), (None, 9, "no drawn kernel yet"), ("x" * 20_000, 9, "too long")],
)
def test_bad_drawn_codes_say_what_to_do(code, size, message):
    with pytest.raises(ValueError, match=message):
        drawn_kernel(code, size)


def test_a_drawn_code_must_fit_its_size_and_hold_ink():
    code = encode_drawn(np.eye(9))
    with pytest.raises(ValueError, match="not 15×15"):
        drawn_kernel(code, 15)
    with pytest.raises(ValueError, match="empty"):
        encode_drawn(np.zeros((9, 9)))
    with pytest.raises(ValueError, match="odd-sided"):
        encode_drawn(np.ones((8, 8)))
    bomb = base64.urlsafe_b64encode(zlib.compress(bytes(10_000_000), 9)).decode()  # 10 MB of zeros, 10 kB of code
    with pytest.raises(ValueError, match="too long|values, not"):
        drawn_kernel(bomb, 9)


def test_a_defocus_is_a_disk_that_sums_to_one_and_reads_back_from_its_text():
    from recon_demo.physics.kernels import defocus_kernel, defocus_size

    k = defocus_kernel(9, 3.5)
    assert k.shape == (9, 9) and float(k.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(k, k.flip(0)) and torch.equal(k, k.flip(1)) and torch.equal(k, k.T)  # round: every symmetry
    assert float(k[4, 4]) == pytest.approx(float(k.max())) and float(k[0, 0]) == 0  # flat inside, nothing at the corners
    assert float(k.sum() / k.max()) == pytest.approx(math.pi * 3.5**2, rel=0.02)  # the disk's area, π r², in full pixels
    assert [defocus_size(r) for r in (1, 2.5, 3, 15)] == [3, 5, 7, 31]
    spec = OperatorSpec.parse("defocus:3")
    assert (spec.blur, spec.kernel_size, spec.radius) == ("defocus", 7, 3.0) and spec.text() == "defocus:3"
    assert spec.describe() == "defocus, radius 3 px" and OperatorSpec.parse(spec.text()) == spec
    assert spec.answer()["radius"] == 3.0 and OperatorSpec().answer()["radius"] is None  # a motion has no radius


@pytest.mark.parametrize(("text", "message"), [
    ("defocus:0", r"defocus radius must be a number in \[1, 15\], got 0"),
    ("defocus:-3", r"defocus radius must be a number in \[1, 15\], got -3"),
    ("defocus:x", "the defocus radius must be a number, got 'x'; write defocus:RADIUS"),
    ("defocus:3:5", "has 2 values after 'defocus': write defocus:RADIUS"),
])  # fmt: skip
def test_a_bad_defocus_says_what_is_allowed(text, message):
    with pytest.raises(ValueError, match=message):
        OperatorSpec.parse(text)
    with pytest.raises(ValueError, match=r"a defocus of radius 6 needs a kernel of at least 13 px, got 9"):
        OperatorSpec(blur="defocus", kernel_size=9, radius=6.0).validated()
