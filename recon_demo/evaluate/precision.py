"""``evaluate --bf16-check``: what bf16 does to each shipped checkpoint's held-out PSNR, and whether it may run so.

For every shipped deblurring checkpoint (the seven of both regimes and the unrolled network), the lecture's
protocol at the lecture's setting on the held-out images runs twice, every network in float32 and every network
under bf16 autocast (``Engine(precision="bf16")``); the mean PSNR change decides (``BF16_MAX_PSNR_CHANGE_DB``): within
it, the app and the API run that checkpoint in bf16 where bf16 is native; beyond it, float32 everywhere, and the table
says why. ``--write`` records each result in ``weights/manifest.json`` (the entry's ``bf16``), which is where the engine
reads it (``serving.engine.bf16_checked``).

Where bf16 is not native (an AVX2-only CPU) PyTorch emulates it: the figures are those of bf16 arithmetic all the same
(inputs, weights and activations rounded to bf16), many times slower to get; ``emulated`` says so. The CT checkpoints
stay in float32 (not checked).
"""

from __future__ import annotations

from dataclasses import replace

from recon_demo.checkpoints import Manifest, ManifestEntry
from recon_demo.evaluate.protocol import EvalConfig, run_evaluation
from recon_demo.progress import Report, no_progress
from recon_demo.serving.engine import BF16_MAX_PSNR_CHANGE_DB, Engine, bf16_checked
from recon_demo.serving.runtime import native_bf16

COMMAND = "python -m recon_demo evaluate --bf16-check --write"


def checked_entries(manifest: Manifest) -> list[ManifestEntry]:
    """The checkpoints the app runs on a blur (CT networks stay float32)."""
    return [e for e in manifest.entries if e.task == "deblur"]


def bf16_check(manifest: Manifest | None = None, device: str | None = None, limit: int | None = None, size: int = 256,
               write: bool = False, report: Report = no_progress) -> list[dict]:  # fmt: skip
    """Each checked entry's mean held-out PSNR in float32 and in bf16, the change and the decision; with ``write``, the
    change is recorded in the manifest (and saved) so that the engine follows it."""
    manifest = manifest or Manifest.load()
    fp32, bf16 = (Engine(device, manifest=manifest, precision=p) for p in ("fp32", "bf16"))
    emulated = not native_bf16(fp32.device.type)[0]
    rows = []
    entries = checked_entries(manifest)
    for i, entry in enumerate(entries, start=1):
        cfg = EvalConfig(models=[(entry.model, None)], regime=entry.regime, limit=limit, size=size)
        runs = [run_evaluation(cfg, engine) for engine in (fp32, bf16)]
        psnr = [r["results"][entry.model]["psnr"] for r in runs]
        per_image = [[r["per_image"][name][entry.model]["psnr"] for name in r["per_image"]] for r in runs]
        record = {"psnr_change_db": round(psnr[1] - psnr[0], 4),
                  "worst_image_change_db": round(max((b - a for a, b in zip(*per_image)), key=abs), 4),
                  "fp32_psnr": round(psnr[0], 3), "bf16_psnr": round(psnr[1], 3), "images": runs[0]["protocol"]["images"],
                  "setting": runs[0]["protocol"]["summary"], "emulated": emulated, "command": COMMAND}  # fmt: skip
        if write:
            entry.bf16 = record  # the manifest's own entry: saved below, in its place
        rows.append({"model": entry.model, "regime": entry.regime, **record, "runs_bf16": bf16_checked(replace(entry, bf16=record))})
        report(i, len(entries), f"{entry.model} ({entry.regime})")
    if write:
        manifest.save()
    return rows


def format_bf16_check(rows: list[dict]) -> str:
    if not rows:
        return "no shipped deblurring checkpoints to check"
    how = "emulated on this CPU (no native bf16): the arithmetic of bf16, slowly" if rows[0]["emulated"] else "native bf16"
    lines = [f"bf16 autocast against float32, {rows[0]['setting']}, {len(rows[0]['images'])} held-out images ({how})",
             f"{'model':<10} {'regime':<8} {'fp32 dB':>9} {'bf16 dB':>9} {'change':>8} {'worst img':>9}  runs in bf16 where native"]  # fmt: skip
    for r in rows:
        verdict = "yes" if r["runs_bf16"] else f"no: it moves PSNR by more than {BF16_MAX_PSNR_CHANGE_DB} dB"
        lines.append(f"{r['model']:<10} {r['regime']:<8} {r['fp32_psnr']:>9.3f} {r['bf16_psnr']:>9.3f} {r['psnr_change_db']:>+8.3f} "
                     f"{r['worst_image_change_db']:>+9.3f}  {verdict}")  # fmt: skip
    return "\n".join(lines)
