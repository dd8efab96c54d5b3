"""Open training data, by name: what ``train --data NAME`` reads, from files that installed packages put on disk.

``python -m recon_demo data``: every source ``train --data`` knows (``datasets.listing``), installed or not, with its
images here, licence and install command, as a Markdown table or JSON; ``--credits``: each installed photograph with
its author and licence.
"""

from __future__ import annotations

import json
from pathlib import Path

from recon_demo import datasets
from recon_demo.progress import CLIProgress


def format_listing(rows: list[dict]) -> str:
    """The listing as a Markdown table, a row per source."""
    lines = ["| source | installed | images | licence | what | install |", "|---|---|---|---|---|---|"]
    for r in rows:
        images = "" if r["images"] is None else f"{r['images']:,}"
        lines.append(f"| {r['source']} | {'yes' if r['installed'] else 'no'} | {images} | {r['license']} | {r['what']} | "
                     f"`{r['install']}` |")  # fmt: skip
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("--credits", action="store_true", help="list each installed photograph with its author and licence")
    parser.add_argument("--format", default="markdown", choices=("markdown", "json"))


def main(args) -> int:
    if args.credits:
        photos = datasets.credits()
        if args.format == "json":
            print(json.dumps([p.__dict__ for p in photos], indent=1))
        else:
            print("\n".join(f"{Path(p.path).name}: {p.author}, {p.license} ({p.package})" for p in photos))
        return 0
    with CLIProgress("data", args.quiet).phase("reading the sources", len(datasets.SOURCES)) as phase:
        rows = datasets.listing(phase)
    print(json.dumps(rows, indent=1) if args.format == "json" else format_listing(rows))
    return 0
