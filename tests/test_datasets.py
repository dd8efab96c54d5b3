"""The open training data (``recon_demo.datasets``): each reader on small files written here in the same formats
(an InVesalius tar.gz, a NIfTI-1 volume, a folder of photographs), the named sources as ``train --data`` uses
them (weights, CT windows, crops that are too flat), the ``data`` listing, and the held-out discipline: no
image of any installed source is a copy of a held-out image. Nothing here needs the data packages."""

from __future__ import annotations

import gzip
import io
import json
import plistlib
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon_demo import datasets, images
from recon_demo.__main__ import main as cli
from recon_demo.checkpoints import Manifest
from recon_demo.training import TrainConfig, Trainer, TrainingError, TrainingImages, _training_patch, detail, parse_source


def write_inv3(path: Path, volume: np.ndarray) -> Path:
    """An InVesalius project as the Debian package ships it: a tar.gz of main.plist and matrix.dat in a folder."""
    main = {"matrix": {"dtype": str(volume.dtype), "filename": "matrix.dat", "shape": list(volume.shape)}, "modality": "CT"}
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in (("main.plist", plistlib.dumps(main)), ("matrix.dat", volume.tobytes())):
            info = tarfile.TarInfo(f"tmpabc/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def write_nifti(path: Path, volume: np.ndarray, slope: float = 1.0, inter: float = 0.0) -> Path:
    """A NIfTI-1 file (int16 voxels, x fastest) with its 348-byte header, gzipped when the name ends in .gz."""
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, *volume.shape, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 4, 16)  # datatype int16, 16 bits
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    struct.pack_into("<2f", header, 112, slope, inter)
    header[344:348] = b"n+1\0"
    data = bytes(header) + volume.astype("<i2").tobytes(order="F")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def head_volume(slices: int = 6, n: int = 64) -> np.ndarray:
    """A CT-like volume: air (-1000 HU) around an ellipse of soft tissue (40 HU) with a bone ring (1000 HU)."""
    yy, xx = np.mgrid[:n, :n]
    r = ((yy - n / 2) / (0.4 * n)) ** 2 + ((xx - n / 2) / (0.3 * n)) ** 2
    image = np.where(r < 1, 40, -1000) + np.where((r > 0.8) & (r < 1), 960, 0)
    volume = np.stack([image] * slices).astype(np.int16)
    volume[0] = -1000  # an empty slice (air only): dropped
    return volume


def test_read_inv3_gives_the_volume_in_hu(tmp_path):
    volume = head_volume()
    assert np.array_equal(datasets.read_inv3(write_inv3(tmp_path / "Cranium.inv3", volume)), volume)
    with tarfile.open(tmp_path / "bad.inv3", "w:gz") as tar:
        info = tarfile.TarInfo("x/other.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ValueError, match="no main.plist"):
        datasets.read_inv3(tmp_path / "bad.inv3")


@pytest.mark.parametrize("name", ["t1.nii", "t1.nii.gz"])
def test_read_nifti_applies_the_scale_and_keeps_the_axes(tmp_path, name):
    volume = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    out = datasets.read_nifti(write_nifti(tmp_path / name, volume, slope=0.5, inter=2.0))
    assert out.shape == (4, 5, 6) and np.allclose(out, volume * 0.5 + 2.0)
    (tmp_path / "bad.nii").write_bytes(b"\0" * 400)
    with pytest.raises(ValueError, match="not a NIfTI-1 file"):
        datasets.read_nifti(tmp_path / "bad.nii")


@pytest.fixture
def open_sources(tmp_path, monkeypatch) -> dict[str, Path]:
    """The three named sources pointed at small files of their formats."""
    ct = write_inv3(tmp_path / "Cranium.inv3", head_volume())
    yy, xx, zz = np.mgrid[:40, :48, :44]
    brain = (((yy - 20) / 16) ** 2 + ((xx - 24) / 20) ** 2 + ((zz - 22) / 18) ** 2 < 1) * (100 + (xx % 7) * 10)
    mri = write_nifti(tmp_path / "ch2.nii.gz", brain.astype(np.int16))
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(photos / f"photo{i}.jpg")
    flat = photos / "flat.png"
    Image.new("L", (300, 300), 128).save(flat)
    sources = {
        "ct-head": datasets.Source("ct-head", "test CT", "GPL-2", "apt-get install -y invesalius-examples", (str(ct),)),
        "mri": datasets.Source("mri", "test MRI", "BSD-3-Clause", "apt-get install -y mricron-data", (str(mri),)),
        "photos": datasets.Source("photos", "test photos", "CC0-1.0", "apt-get install -y …",
                                  tuple(str(p) for p in sorted(photos.iterdir()))),  # fmt: skip
    }
    monkeypatch.setattr(datasets, "SOURCES", sources)
    datasets.ct_slices.cache_clear()
    datasets.mri_slices.cache_clear()
    return {"ct": ct, "mri": mri, "photos": photos}


def test_named_sources_become_training_images(open_sources):
    data = TrainingImages(("ct-head", "mri", "photos"), 64)
    kinds = [kind for kind, _ in data.items]
    assert kinds.count("ct") == 5  # the slice of air only is left out
    assert kinds.count("mri") > 10 and kinds.count("photo") == 4
    g = torch.Generator().manual_seed(0)
    for i in range(len(data)):
        img = data.image(i, g)
        assert img.shape[0] == 1 and min(img.shape[1:]) == 64 and 0 <= float(img.min()) and float(img.max()) <= 1
    ct = data[0]
    assert float(ct.min()) < -900 and float(ct.max()) > 500  # kept in HU until a window is drawn
    windows = {tuple(data.image(0, g).unique()[:3].tolist()) for _ in range(5)}
    assert len(windows) > 1  # a window of its own for each draw
    assert data.describe()["by_source"]["ct-head"] == {"images": 5, "weight": 1.0, "license": "GPL-2"}


def test_a_source_that_is_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(datasets.SOURCES, "ct-head", datasets.Source("ct-head", "", "GPL-2", "apt-get install -y invesalius-examples",
                                                                     ("/nonexistent/Cranium.inv3",)))  # fmt: skip
    with pytest.raises(TrainingError, match="not installed here: apt-get install -y invesalius-examples"):
        TrainingImages(("ct-head",), 64)


def test_weights_choose_sources_and_bad_weights_are_refused(open_sources):
    assert parse_source("photos:3") == ("photos", 3.0) and parse_source("photos") == ("photos", None)
    with pytest.raises(TrainingError, match="positive number"):
        parse_source("photos:0")
    data = TrainingImages(("ct-head:1", "photos:99"), 64)
    g = torch.Generator().manual_seed(1)
    drawn = [data.items[data.draw(g)][0] for _ in range(400)]
    assert drawn.count("photo") > 360  # 99 in 100 expected


def test_flat_crops_are_redrawn_and_scales_shrink_larger_crops(open_sources):
    data = TrainingImages(("photos",), 64)
    flat = next(i for i, (_, p) in enumerate(data.items) if Path(p).name == "flat.png")
    cfg = TrainConfig(patch_size=32, image_size=64, crop_scales=(1.0, 2.0), min_detail=0.01).validated()
    crop = _training_patch(cfg, data, flat, torch.Generator().manual_seed(0))
    assert crop.shape == (1, 32, 32) and detail(crop) < 1e-6  # a flat image has no better crop: the 8th is kept
    sharp = next(i for i, (_, p) in enumerate(data.items) if Path(p).name == "photo0.jpg")
    assert detail(_training_patch(cfg, data, sharp, torch.Generator().manual_seed(0))) > 0.01
    with pytest.raises(TrainingError, match="crop scales"):
        TrainConfig(patch_size=48, image_size=64, crop_scales=(1.0, 2.0)).validated()


def test_train_on_named_sources_records_them_in_the_manifest(open_sources, tmp_path):
    out = tmp_path / "w" / "cnn_course.safetensors"
    args = ["train", "--model", "cnn", "--steps", "3", "--batch-size", "2", "--patch-size", "32", "--image-size", "64",
            "--data", "ct-head:1,mri:1,photos:2,package", "--crop-scales", "1,1.5", "--min-detail", "0.005",
            "--eval-every", "0", "--val-size", "64", "--out", str(out)]  # fmt: skip
    assert cli(args) == 0
    entry = Manifest.load(out.parent).find("cnn", "course")
    sources = entry.data["by_source"]
    assert sources["photos"] == {"images": 4, "weight": 2.0, "license": "CC0-1.0"} and sources["package"]["weight"] == 1.0
    trainer = Trainer(TrainConfig(model="cnn", steps=1, batch_size=2, patch_size=32, image_size=64, eval_every=0,
                                  data=("ct-head", "photos"), val_size=64))  # fmt: skip
    assert trainer.data.describe()["by_source"]["ct-head"]["license"] == "GPL-2"


def test_the_data_listing_names_every_source_its_licence_and_install_command(open_sources, capsys, monkeypatch):
    monkeypatch.setitem(datasets.SOURCES, "mri", datasets.Source("mri", "absent", "BSD-3-Clause", "apt-get install -y mricron-data",
                                                                 ("/nonexistent/ch2.nii.gz",)))  # fmt: skip
    assert cli(["data", "--format", "json"]) == 0
    printed = capsys.readouterr()
    rows = {r["source"]: r for r in json.loads(printed.out)}
    assert set(rows) == {"package", "phantoms", "ct-head", "mri", "photos", "heldout-medical"}
    assert rows["heldout-medical"]["install"] == "pip install pydicom pydicom-data"
    assert rows["ct-head"]["installed"] and rows["ct-head"]["images"] == 5 and rows["ct-head"]["license"] == "GPL-2"
    assert not rows["mri"]["installed"] and rows["mri"]["install"] == "apt-get install -y mricron-data"
    assert printed.err.startswith("data: reading the sources…")
    assert cli(["data", "--quiet"]) == 0
    table = capsys.readouterr()
    assert "| mri | no |" in table.out and "`apt-get install -y mricron-data`" in table.out and table.err == ""


def _ahash(img: np.ndarray) -> np.ndarray:
    """A 16×16 average hash: which cells of the image are brighter than its mean (survives resizing and JPEG)."""
    small = np.asarray(Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).resize((16, 16), Image.BILINEAR), float)
    return small > small.mean()


def test_no_training_image_of_any_installed_source_is_a_held_out_image(monkeypatch):
    # the real sources as installed here (none in CI): package, phantoms and whatever open data is on disk; the
    # held-out medical set too where pydicom-data is installed
    held_out = {name: _ahash(images.to_tensor(images.load_example(name), 256)[0, 0].numpy()) for name in images.split_names("held_out")}
    if not datasets.medical_missing():
        held_out |= {name: _ahash(images.protocol_tensor(img, 256)[0, 0].numpy()) for name, img in datasets.held_out_medical()}
    sources = ["package", "phantoms", *(name for name, s in datasets.SOURCES.items() if s.installed())]
    data = TrainingImages(tuple(sources), 256, phantoms=16)
    for i in range(len(data)):
        h = _ahash(data.image(i).numpy()[0])
        for name, ref in held_out.items():
            assert (h != ref).sum() > 8, f"training image {data.items[i]} looks like the held-out image {name}"


def test_the_install_script_installs_every_package_the_sources_name():
    script = (Path(__file__).resolve().parents[1] / "scripts" / "install-training-data.sh").read_text()
    for source in datasets.SOURCES.values():
        for command in source.install.split("&&"):
            words = command.split()
            packages = [w for w in words[2:] if not w.startswith("-")]  # after "apt-get install" / "pip install"
            assert packages and all(p in script.split() for p in packages), (source.name, packages)
    assert "pip install -q pydicom pydicom-data" in script  # the held-out medical set (datasets.MEDICAL_INSTALL)
    assert script.splitlines()[-1] == "python3 -m recon_demo data"  # it ends by showing what is now installed


# ------------------------------------------------------------------------------------------------ held-out medical


def write_dicom(path: Path, pixels: np.ndarray, modality: str = "CT", slope: float = 1.0, intercept: float = 0.0,
                interpretation: str = "MONOCHROME2", **extra) -> Path:  # fmt: skip
    """A DICOM file as scanners write one: file meta, explicit VR little endian, int16, uint16 or RGB uint8 pixels."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, modality
    colour = interpretation == "RGB"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = (3 if colour else 1), interpretation
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype == np.int16)
    if not colour:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    for name, value in extra.items():
        setattr(ds, name, value)
    if pixels.ndim == (4 if colour else 3):
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_dicom_slice_maps_air_to_black_and_its_top_percentile_to_white(tmp_path):
    pytest.importorskip("pydicom")
    hu = np.full((64, 64), -1000, np.int16)  # air
    hu[8:56, 8:56] = 40  # soft tissue
    hu[20:30, 20:30] = 1000  # bone
    hu[:, :4] = -3024  # the scanner's padding outside its field of view
    stored = (hu + 1024).astype(np.int16)  # stored as scanners do (signed): HU = stored - 1024
    x = images.dicom_pixels(write_dicom(tmp_path / "ct.dcm", stored, intercept=-1024.0))
    assert x.dtype == np.float32 and x.shape == (64, 64)
    assert x[0, 0] == 0 and x[4, 4] == 0  # padding and air: black
    assert x[25, 25] == pytest.approx(1.0) and x[40, 40] == pytest.approx(1040 / 2000)  # bone the top; tissue between
    img = images.open_image((tmp_path / "ct.dcm").read_bytes())  # an upload reads the same way
    assert np.allclose(np.asarray(img), x)
    # a CT map that is not in HU (its rescale type says so): from its own minimum, not from air
    mapped = images.dicom_pixels(write_dicom(tmp_path / "map.dcm", stored, intercept=-1024.0, RescaleType="US"))
    assert mapped[0, 0] == 0 and mapped[4, 4] == pytest.approx(2024 / 4024)


def test_dicom_series_colour_and_inverted_grey_become_one_grey_slice(tmp_path):
    pytest.importorskip("pydicom")
    series = np.zeros((3, 32, 32), np.uint16)
    for i in range(3):
        series[i, :, 8 * (i + 1) :] = 100  # each frame bright from its own column on
    mr = images.dicom_pixels(write_dicom(tmp_path / "mr.dcm", series, "MR"))  # a series: its middle frame, floor 0
    assert mr[0, 15] == 0 and mr[0, 16] == pytest.approx(1.0)
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, 8:] = (255, 0, 0)  # red on black: grey 0.299 of white, which is the top
    rgb[:2, :2] = 255
    grey = images.dicom_pixels(write_dicom(tmp_path / "rgb.dcm", rgb, "MR", interpretation="RGB"))
    assert grey.shape == (16, 16) and grey[8, 0] == 0 and grey[8, 12] == pytest.approx(0.299, abs=1e-3)
    inverted = images.dicom_pixels(write_dicom(tmp_path / "m1.dcm", series[1], "MR", interpretation="MONOCHROME1"))
    assert inverted[0, 0] == pytest.approx(1.0) and inverted[0, 20] == 0  # white is low in MONOCHROME1


def test_a_dicom_file_that_cannot_be_decoded_says_so(tmp_path):
    pytest.importorskip("pydicom")
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    path = write_dicom(tmp_path / "j2k.dcm", np.zeros((16, 16), np.uint16), "MR")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"not a JPEG 2000 codestream"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ValueError, match="cannot be decoded here"):
        images.dicom_pixels(path)
    big = write_dicom(tmp_path / "big.dcm", np.zeros((8, 8), np.uint16), "MR")
    ds = pydicom.dcmread(big)
    ds.Rows = ds.Columns = 8000  # the header claims 64 megapixels: refused before decoding
    ds.save_as(big, enforce_file_format=True)
    with pytest.raises(ValueError, match="the limit is"):
        images.open_image(big)


def test_the_held_out_medical_set_is_all_or_nothing_and_evaluate_reads_it(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pydicom")
    rng = np.random.default_rng(0)
    files = []
    for i, modality in enumerate(("CT", "CT", "MR")):
        pixels = rng.integers(0, 2000, (96, 80)).astype(np.uint16)
        files.append(datasets.MedicalSlice(f"scan-{i}", str(write_dicom(tmp_path / f"{i}.dcm", pixels, modality)), "test"))
    monkeypatch.setattr(datasets, "MEDICAL", tuple(files))
    loaded = datasets.held_out_medical()
    assert [n for n, _ in loaded] == ["scan-0", "scan-1", "scan-2"]
    assert all(img.mode == "L" and img.size == (80, 96) for _, img in loaded)
    assert cli(["evaluate", "--images", "heldout-medical", "--limit", "2", "--baselines", "input,wiener", "--quiet",
                "--format", "json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"]["images"] == ["scan-0", "scan-1"] and result["protocol"]["images_dir"] == "heldout-medical"
    monkeypatch.setattr(datasets, "MEDICAL", (*files, datasets.MedicalSlice("gone", str(tmp_path / "gone.dcm"), "test")))
    with pytest.raises(FileNotFoundError, match=r"pip install pydicom pydicom-data.*gone\.dcm"):
        datasets.held_out_medical()
    assert cli(["evaluate", "--images", "heldout-medical", "--baselines", "input", "--quiet"]) != 0
    assert "pip install pydicom pydicom-data" in capsys.readouterr().err


def test_pydicom_slices_in_the_catalogue_are_never_training_images():
    pytest.importorskip("pydicom")
    cat = images.catalogue()
    assert cat["ct_small"].split == "held_out_medical" and "ct_small" not in images.split_names("train", True)
    assert "ct_small" not in images.split_names("held_out", True)  # evaluate's default set is unchanged
    x = images.to_tensor(images.load_example("ct_small"))
    assert min(x.shape[-2:]) == 256 and x.max() <= 1 and x.std() > 0.05
