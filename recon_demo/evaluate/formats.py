"""How an evaluation is printed: the lecture's table, the README's markdown table (with parameters and ms per
256² image) and the off-course table (one row per setting, the best in bold)."""

from __future__ import annotations

from recon_demo.evaluate.protocol import REPORTED
from recon_demo.methods.registry import label
from recon_demo.metrics import METRICS


def format_table(result: dict) -> str:
    """The lecture's layout: ``CNN | MSE: 0.000340 | PSNR: 34.696 dB | SSIM: 0.9277 | LPIPS: 0.0598``."""
    p = result["protocol"]
    task = p.get("task", "deblur")
    lines = [f"{len(p['images'])} images, {p['summary']}"]
    width = max(len(label(n)) for n in result["results"])
    columns = REPORTED + (("dc",) if task == "ct" else ())
    for name, r in result["results"].items():
        cells = [f"{label(name):<{width}}"] + [
            f"{METRICS[m].label}: {METRICS[m].format(r[m])}" for m in columns if m != "lpips" or r[m] is not None
        ]
        lines.append(" | ".join(cells))
    lines += result["notes"]
    return "\n".join(lines)


def format_markdown(result: dict) -> str:
    """The README's results table: the lecture's columns, then parameters and median ms per 256² image."""
    p = result["protocol"]
    task = p.get("task", "deblur")
    columns = REPORTED + (("dc",) if task == "ct" else ())
    lines = [
        f"{len(p['images'])} images, {p['summary']}, {p['size']}² on {p['device']}",
        "",
        "| model | " + " | ".join(METRICS[m].label for m in columns) + " | parameters | ms per 256² |",
        "|---" * (len(columns) + 3) + "|",
    ]
    for name, r in result["results"].items():
        cells = [label(name)] + [METRICS[m].format(r[m]) if r[m] is not None else "—" for m in columns]
        cells.append(f"{r['params']:,}" if r.get("params") is not None else "")
        cells.append(f"{r['ms']:.1f}" if r.get("ms") is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines += result["notes"]
    return "\n".join(lines)


def format_off_course_markdown(results: list[dict]) -> str:
    """The off-course check at a glance: one row per setting, each method's PSNR (dB), the best in bold."""
    names = list(results[0]["results"])
    lines = [
        f"{len(results[0]['protocol']['images'])} images, seed {results[0]['protocol']['seed']}, PSNR dB",
        "",
        "| setting | " + " | ".join(label(n) for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for r in results:
        psnrs = {n: r["results"][n]["psnr"] for n in names}
        best = max(psnrs.values())
        cells = [f"**{v:.2f}**" if v == best else f"{v:.2f}" for v in psnrs.values()]
        setting = r["protocol"]["summary"].rsplit(", seed", 1)[0]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines + sorted({note for r in results for note in r["notes"]}))


FORMATS = {"table": format_table, "markdown": format_markdown}
