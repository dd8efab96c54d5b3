"""Publish the repository as a Hugging Face Space: ``python scripts/deploy_space.py USER/NAME``.

What goes up is what the app needs and nothing else: the files git tracks, less the tests, CI, benchmarks, scripts and
anything a training run or a test leaves behind (``*.state.pt``, ``runs/``, ``test-artifacts/``; those are also
untracked). The weights go with it; ``huggingface_hub``'s ``upload_folder`` stores every binary file through the Hub's
own large-file storage (Xet), which is what the Hub requires of binaries over about 1 MB: a plain ``git push`` of
``weights/`` is refused. The README's front matter (``sdk: gradio``, ``sdk_version``, ``app_file: app.py``) makes the
Space a Gradio one that runs ``app.py``.

``--dry-run`` lists each file with its size and how it is stored, and the total, without a token or a network; the
test suite runs it. A real upload needs a token with write access (``HF_TOKEN``, or ``huggingface-cli login``).
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Tracked files the Space does not need: the tests and their fixtures, CI, benchmarks and these scripts, caches.
EXCLUDE = ("tests/*", ".ci/*", "benchmarks/*", "scripts/*", ".github/*", ".gitignore", "requirements-dev.txt", "*.state.pt", "runs/*",
           "test-artifacts/*", "*/__pycache__/*", "*.pyc")  # fmt: skip
LARGE = 1_000_000  # bytes: above this the Hub wants a binary in its large-file storage (upload_folder does that)
BINARY_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".png", ".jpg", ".npz")


def space_files(root: Path = ROOT) -> list[tuple[str, int]]:
    """(path, bytes) of every file the Space gets: git's tracked files less ``EXCLUDE``, sorted."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout.decode()
    paths = [p for p in listed.split("\0") if p and (root / p).is_file()]
    kept = [p for p in paths if not any(fnmatch.fnmatch(p, pattern) for pattern in EXCLUDE)]
    return sorted((p, (root / p).stat().st_size) for p in kept)


def storage(path: str, size: int) -> str:
    """How the Hub keeps the file: "xet" for binaries (large-file storage), "git" for text."""
    return "xet" if path.endswith(BINARY_SUFFIXES) or size > LARGE else "git"


def dry_run(files: list[tuple[str, int]]) -> str:
    lines = [f"{size:>11,d}  {storage(path, size):<4}  {path}" for path, size in files]
    total = sum(size for _, size in files)
    large = sum(1 for path, size in files if storage(path, size) == "xet")
    lines.append(f"{len(files)} files, {total / 1e6:.1f} MB in all; {large} binaries stored by the Hub's large-file storage")
    return "\n".join(lines)


def upload(repo_id: str, files: list[tuple[str, int]], private: bool, root: Path = ROOT) -> str:
    """Create the Space (a Gradio one) if needed and upload ``files`` in one commit; returns the Space's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    api.upload_folder(folder_path=root, repo_id=repo_id, repo_type="space", allow_patterns=[p for p, _ in files],
                      commit_message="Deploy recon-demo")  # fmt: skip
    return f"https://huggingface.co/spaces/{repo_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo_id", nargs="?", help="the Space, USER/NAME (not needed with --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded, and the total size")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    args = parser.parse_args(argv)
    files = space_files()
    if args.dry_run:
        print(dry_run(files))
        return 0
    if not args.repo_id or args.repo_id.count("/") != 1:
        print("deploy_space: give the Space as USER/NAME (or --dry-run)", file=sys.stderr)
        return 2
    print(dry_run(files))
    print(upload(args.repo_id, files, args.private))
    return 0


if __name__ == "__main__":
    sys.exit(main())
