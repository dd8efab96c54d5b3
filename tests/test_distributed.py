"""``train`` under torchrun (``recon_demo.training.distributed``): two CPU processes (gloo), each with half the batch, end
with the weights of one process with the whole batch, and so does a run stopped and resumed; rank 0 alone
writes the checkpoint, its state and the manifest entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from recon_demo.checkpoints import Manifest
from recon_demo.training.distributed import World, world_from_env

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--model", "cnn", "--patch-size", "32", "--phantoms", "4", "--max-images", "4", "--eval-every", "0", "--val-size", "64",
          "--checkpoint-every", "0", "--quiet"]  # fmt: skip
TOLERANCE = 1e-5  # the same sums in another order: fp32 rounding only
GLOO_ABORT = "terminate called without an active exception"  # libstdc++'s words when a rank aborts at a thread's end


def _train(out: Path, steps: int, batch: int, processes: int = 1, *extra: str, expect: int = 0) -> str:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    cmd = [sys.executable, *launcher, "-m", "recon_demo", "train", *COMMON, "--steps", str(steps), "--batch-size", str(batch),
           "--out", str(out), *extra]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")} | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if processes > 1 and done.returncode != expect and GLOO_ABORT in done.stderr:
        # gloo's own threads, aborting a rank as a loaded machine (the suite on both cores) ends the run: seen once in
        # 2 CI runs after the barrier in cli/train.py, never with the machine idle. One more run tells that from a bug
        # in ours (a real failure fails twice); a second abort fails the test.
        print(f"torchrun: a rank aborted ({GLOO_ABORT!r}); running it once more")
        if "--resume" not in extra:  # from scratch, as the first time
            for written in out.parent.glob(out.name + "*"):
                written.unlink()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == expect, done.stderr[-3000:]
    return done.stderr


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "cnn_course.safetensors"
    _train(out, 4, 4)
    return out


def test_two_processes_with_half_the_batch_train_as_one_with_the_whole(one_process, tmp_path):
    out = tmp_path / "cnn_course.safetensors"
    _train(out, 4, 2, 2)
    assert _max_diff(one_process, out) < TOLERANCE
    entry = Manifest.load(tmp_path).find("cnn", "course")  # written once, by rank 0
    assert entry.recipe["processes"] == 2 and entry.recipe["global_batch"] == 4 and entry.recipe["batch_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn_course.safetensors", "cnn_course.state.pt", "manifest.json"]


def test_a_distributed_run_resumes_where_it_stopped(one_process, tmp_path):
    out = tmp_path / "cnn_course.safetensors"
    _train(out, 2, 2, 2)
    _train(out, 4, 2, 2, "--resume")
    assert _max_diff(one_process, out) < TOLERANCE


def test_a_resume_with_another_process_count_is_refused(tmp_path):
    out = tmp_path / "cnn_course.safetensors"
    _train(out, 2, 2, 2)
    err = _train(out, 4, 2, 1, "--resume", expect=2)  # the same flags, half the global batch: refused
    assert "trained by 2 process(es) and this run has 1" in err


def test_the_world_comes_from_torchruns_environment(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert world_from_env() == World(0, 1, 0) and not world_from_env().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert world_from_env() == World(3, 4, 1) and not world_from_env().is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="inconsistent torchrun environment"):
        world_from_env()
