"""The matrix-free projector: the stored matrix it replaces, its two paths (numba, torch), adjointness at any size."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from recon_demo.metrics import psnr
from recon_demo.physics import ct_projector
from recon_demo.physics.ct import Radon, detector_bins, projection_angles, radon_operator

needs_numba = pytest.mark.skipif(not ct_projector.HAS_NUMBA, reason="numba is not installed")


def _geometry(size: int, angles: int) -> ct_projector.Geometry:
    return ct_projector.Geometry(projection_angles(angles).numpy(), size, detector_bins(size))


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("size, angles", [(256, 60), (33, 7), (64, 180), (16, 1), (40, 2), (24, 4), (304, 120)])
def test_it_computes_the_stored_matrix_it_replaces(size, angles):
    """The sparse matrices the lab stored before (float64 geometry); the projector's float32 geometry differs by
    rounding only: a relative 2e-6 at 256², 60 angles."""
    op = Radon(size, angles)
    a, at = ct_projector.system_matrices(projection_angles(angles).numpy(), size, op.bins)
    g = torch.Generator().manual_seed(size)
    x = torch.rand(2, 1, size, size, generator=g)
    y = torch.rand(2, 1, *op.sinogram_shape, generator=g)
    stored_forward = (a @ x.reshape(2, -1).T).T.reshape(op.forward(x).shape)
    stored_adjoint = (at @ y.reshape(2, -1).T).T.reshape(x.shape)
    assert _relative(op.forward(x), stored_forward) < 1e-5
    assert _relative(op.adjoint(y), stored_adjoint) < 1e-5
    for backend in ("auto", "torch"):  # (24, 4), (304, 120): a corner reaches one bin past the last, which is dropped
        geometry = _geometry(size, angles)
        assert _relative(ct_projector.project(x[:, 0], geometry, backend), stored_forward[:, 0]) < 1e-5
        assert _relative(ct_projector.backproject(y[:, 0], geometry, backend), stored_adjoint[:, 0]) < 1e-5


@needs_numba
@pytest.mark.parametrize("size, angles", [(32, 12), (31, 5), (64, 90), (24, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_torch_path_agrees_with_the_numba_kernels(size, angles, dtype):
    geometry = _geometry(size, angles)
    g = torch.Generator().manual_seed(angles)
    x = torch.rand(3, size, size, generator=g, dtype=dtype)
    y = torch.rand(3, angles, geometry.bins, generator=g, dtype=dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert _relative(ct_projector.project(x, geometry, "torch"), ct_projector.project(x, geometry, "numba")) < tolerance
    assert _relative(ct_projector.backproject(y, geometry, "torch"), ct_projector.backproject(y, geometry, "numba")) < tolerance


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("size, angles", [(128, 60), (33, 7), (64, 180), (16, 1), (100, 360)])
def test_both_paths_are_exact_adjoints_in_float64(backend, size, angles):
    geometry = _geometry(size, angles)
    g = torch.Generator().manual_seed(size * angles)
    x = torch.randn(2, size, size, generator=g, dtype=torch.float64)
    y = torch.randn(2, angles, geometry.bins, generator=g, dtype=torch.float64)
    lhs = (ct_projector.project(x, geometry, backend) * y).sum()
    rhs = (x * ct_projector.backproject(y, geometry, backend)).sum()
    assert float(abs(lhs - rhs) / abs(lhs)) < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("size, angles", [(512, 180), (1024, 16), (700, 45)])
def test_the_adjoint_holds_to_float32_precision_at_the_scanners_sizes(size, angles):
    op = Radon(size, angles)
    g = torch.Generator().manual_seed(size)
    x = torch.rand(1, 1, size, size, generator=g)
    y = torch.rand(1, 1, *op.sinogram_shape, generator=g)
    lhs = (op.forward(x).double() * y.double()).sum()
    rhs = (x.double() * op.adjoint(y).double()).sum()
    assert float(abs(lhs - rhs) / abs(lhs)) < 1e-5


@pytest.mark.slow
def test_fbp_of_a_phantom_at_512_with_180_views():
    x_true = torch.from_numpy(resize(shepp_logan_phantom(), (512, 512), anti_aliasing=True).astype(np.float32))[None, None]
    op = Radon(512, 180)
    assert op.sinogram_shape == (180, 726)
    x_fbp = op.fbp(op.forward(x_true)).clamp(0, 1)
    assert psnr(x_fbp, x_true) > 28  # the 128² phantom at 180 views gives 29.99 (test_physics_ct)
    few = Radon(512, 20)
    assert psnr(few.fbp(few.forward(x_true)).clamp(0, 1), x_true) < psnr(x_fbp, x_true) - 8  # few views: streaks


def test_an_operator_holds_tables_of_its_angles_not_a_matrix():
    """Memory that does not grow with size² × angles: what an operator keeps is a few arrays of n_angles numbers."""
    for size, angles in ((256, 60), (512, 180), (1024, 360)):
        geometry = radon_operator(size, angles).geometry
        arrays = [v for v in vars(geometry).values() if isinstance(v, np.ndarray | torch.Tensor)]
        held = sum(a.nbytes if isinstance(a, np.ndarray) else a.numel() * a.element_size() for a in arrays)
        assert geometry.nbytes == held and held <= 7 * angles * 8  # cos, sin, s, |d|, 1/(2ab), partners, leaders: 8 bytes each


def test_half_precision_and_autograd_follow_the_input():
    op = Radon(16, 5)
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op.forward, (x,))
    y = torch.rand(1, 1, *op.sinogram_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op.adjoint, (y,))
    half = op.forward(x.detach().bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), op.forward(x.detach().float()), rtol=2e-2, atol=2e-2)


def test_repeated_and_mirrored_angles_are_each_counted_once():
    theta = np.array([0.3, 0.3, np.pi - 0.3, np.pi / 2, 0.0])  # a repeat, a mirror, and two angles without one
    geometry = ct_projector.Geometry(theta, 20, detector_bins(20))
    x = torch.rand(1, 20, 20, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = torch.rand(1, len(theta), geometry.bins, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    by_numba, by_torch = ct_projector.project(x, geometry), ct_projector.project(x, geometry, "torch")
    assert _relative(by_numba, by_torch) < 1e-12
    torch.testing.assert_close(by_numba[:, 0], by_numba[:, 1])  # the repeat: the same row, not a doubled mirror
    assert _relative(ct_projector.backproject(y, geometry), ct_projector.backproject(y, geometry, "torch")) < 1e-12


def test_second_derivatives_go_through_the_projector():
    op = Radon(12, 3)
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(op.forward, (x,))


def test_an_unknown_backend_is_refused():
    geometry = _geometry(8, 2)
    with pytest.raises(ValueError, match="backend must be auto, numba or torch"):
        ct_projector.project(torch.zeros(1, 8, 8), geometry, "astra")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident memory from /proc")
def test_a_class_trying_many_geometries_does_not_grow_the_memory():
    """The stored matrices took 156 MB at 256², 60 angles and 464 MB at 180, four geometries kept: ~1.2 GB for a
    class moving the angle slider. Matrix-free, twenty geometries cost what one does."""
    x = torch.rand(1, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    op = radon_operator(256, 7)
    op.adjoint(op.forward(x))  # the kernels loaded, the allocator warm
    before = _rss_mb()
    for angles in range(30, 181, 8):
        op = radon_operator(256, angles)
        op.fbp(op.forward(x))
    assert _rss_mb() - before < 64
