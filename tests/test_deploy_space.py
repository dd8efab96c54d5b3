"""The Space's deployment (``scripts/deploy_space.py``): its dry run lists what a real upload would send."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import gradio

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "deploy_space.py"


def _module():
    spec = importlib.util.spec_from_file_location("deploy_space", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dry_run_lists_the_app_and_its_weights_and_nothing_else():
    out = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()[:-1]]
    listed = {path: (int(size.replace(",", "")), kind) for size, kind, path in rows}
    weights = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "weights").glob("*.safetensors"))
    assert weights and all(listed[w][1] == "xet" for w in weights)  # every checkpoint, through large-file storage
    for needed in ("app.py", "requirements.txt", "README.md", "weights/manifest.json", "recon_demo/ui/__init__.py"):
        assert needed in listed and listed[needed][1] == "git"
    assert not [p for p in listed if p.startswith(("tests/", ".ci/", "benchmarks/", "scripts/")) or p.endswith(".state.pt")]
    total = re.fullmatch(r"(\d+) files, ([0-9.]+) MB in all; (\d+) binaries stored by the Hub's large-file storage",
                         out.splitlines()[-1])  # fmt: skip
    assert total and int(total.group(1)) == len(listed)
    assert abs(float(total.group(2)) - sum(size for size, _ in listed.values()) / 1e6) < 0.06


def test_training_states_and_test_files_stay_home(tmp_path):
    for path in ("app.py", "weights/unet.safetensors", "weights/unet.state.pt", "tests/test_x.py", "runs/a.safetensors"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x" * 10)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-f", "."], cwd=tmp_path, check=True)  # tracked even where .gitignore would not
    assert [p for p, _ in _module().space_files(tmp_path)] == ["app.py", "weights/unet.safetensors"]


def test_the_space_runs_the_gradio_we_test():
    front = (ROOT / "README.md").read_text().split("---")[1]
    assert re.search(r"^sdk: gradio$", front, re.M) and re.search(r"^app_file: app.py$", front, re.M)
    assert re.search(r"^sdk_version: (\S+)$", front, re.M).group(1) == gradio.__version__
    assert re.search(r"^gradio>=6", (ROOT / "requirements.txt").read_text(), re.M)  # the app needs launch(css=...)


def test_a_real_upload_needs_a_space_name(capsys):
    assert _module().main([]) == 2
    assert "USER/NAME" in capsys.readouterr().err
