"""``python -m recon_demo bench``: how fast the engine is, against a plain lecture-style loop and the machine.

The measurements are ``recon_demo.bench``'s (its docstring lists them, ``run_bench`` makes them); here the flags, the
parts done as progress on stderr, and the report as a table (``format_report``) or JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

from recon_demo.bench import ct as ct_bench
from recon_demo.bench import run_bench
from recon_demo.progress import CLIProgress


def format_report(r: dict) -> str:
    """The report as the command prints it: a line per model, then each other part's figures."""
    lines = [f"device {r['device']} ({r['threads']} threads, torch {r['torch']}), weights: {r['weights']}",
             f"{'model':<10} {'engine ms':>10} {'lecture ms':>11} {'bf16 ms':>8} {'× faster':>8} {'GFLOP':>7} {'max |diff|':>11}  app runs"]  # fmt: skip
    for name, m in r["per_model"].items():
        bf16 = f"{m['bf16_ms']:>8.1f} {m['bf16_ratio']:>8.2f}" if m["bf16_ms"] is not None else f"{'n/a':>8} {'':>8}"
        lines.append(f"{name:<10} {m['ms']:>10.1f} {m['lecture_ms']:>11.1f} {bf16} {m['gflop']:>7.2f} {m['max_abs_diff']:>11.1e}  "
                     f"{m['app_precision']}")  # fmt: skip
    lines.append(f"{'all seven':<10} {r['engine_all_ms']:>10.1f} {r['lecture_loop_all_ms']:>11.1f} {r['gflop_all']:>7.2f}")
    u = r["unrolled"]
    lines.append(f"{'unrolled':<10} {u['ms']:>10.1f} {'':>11} {u['gflop']:>7.2f}  (knows K, {u['precision']}; {u['ratio_to_unet']}× the UNet's time)")
    lines.append(f"{'TV':<10} {r['tv']['ms']:>10.1f} {'':>11} {'':>7}  (handed K; {r['tv']['ratio_to_unet']}× the UNet's time)")
    rs = r["restore"]
    lines.append(f"restore ({rs['size'][1]}×{rs['size'][0]}, the estimate + {', '.join(rs['methods'])}): {rs['ms']} ms "
                 f"(estimate {rs['estimate_ms']} ms; " + ", ".join(f"{n} {v} ms" for n, v in rs["methods_ms"].items()) + ")")
    if not r["bf16_native"]:
        lines.append(f"bf16: {r['bf16_note']}")
    lines.append(f"speed-up {r['speedup']}×; SGEMM {r['sgemm_gflops']} GFLOP/s; engine {r['achieved_gflops']} GFLOP/s, "
                 f"efficiency {r['efficiency']}")  # fmt: skip
    if r.get("autocast_all_ms") is not None:
        lines.append(f"bf16 autocast: all seven {r['autocast_all_ms']} ms, PSNR change ≤ {r['autocast_max_psnr_change_db']:.4f} dB")
    if r["cold_start_s"] is not None:
        split = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["roundtrip_split_ms"].items())
        idle = ("n/a" if r["idle_cpu_fraction"] is None
                else f"{r['idle_cpu_fraction']:.2%} of a core, {r['idle_wakeups_per_s']:.0f} wake-ups/s")  # fmt: skip
        lines += [f"app: cold start {r['cold_start_s']} s = import floor {r['import_floor_s']} s + the app's own {r['app_start_s']} s (its first request {r['first_request_ms']} ms); "
                  f"idle server {idle}",
                  f"/reconstruct round trip ({r['roundtrip_models']}) {r['roundtrip_ms']} ms = compute {r['roundtrip_compute_ms']} ms "
                  f"+ overhead {r['roundtrip_overhead_ms']} ms ({split})"]  # fmt: skip
    if r.get("classroom"):
        c = r["classroom"]
        lines.append(f"classroom ({c['clients']} × {c['per_client']} + {c['trainings']} trainings): p50 {c['p50_ms']} ms, "
                     f"p95 {c['p95_ms']} ms (each client's own p95: median {c['client_p95_ms']['median']} ms, worst "
                     f"{c['client_p95_ms']['worst']} ms), {c['throughput_per_s']} requests/s, {c['failed']} failed, "
                     f"peak RSS {c['peak_rss_mb']} MB")  # fmt: skip
    lines.append(f"loss study ({r['loss_study_scale']}): {r['loss_study_s']} s, {r['train_steps_per_s']} steps/s")
    step = r["train_step_ms"]
    if r["amp_supported"]:
        lines.append(f"train step ({r['train_step_scale']}): fp32 {step['fp32']} ms, --amp (bf16) {step['bf16']} ms, "
                     f"{r['amp_speedup']}× faster")  # fmt: skip
    else:
        lines.append(f"train step ({r['train_step_scale']}): fp32 {step['fp32']} ms; --amp (bf16): not supported here ({r['amp_note']})")
    return "\n".join(lines + ct_bench.format_lines(r["ct"]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a short run for CI (under a minute): no app, a small study")
    parser.add_argument("--repeats", type=int, help="timed runs per model (default 15; quick 3)")
    parser.add_argument("--no-app", action="store_true", help="skip the app: cold start, round trip, idle CPU, classroom")
    parser.add_argument("--no-classroom", action="store_true", help="skip the classroom at once (30 clients, about 30 s)")
    parser.add_argument("--device", help="cpu, cuda, mps (default: RECON_DEVICE or the best available)")
    parser.add_argument("--format", default="table", choices=("table", "json"))


def main(args: argparse.Namespace) -> int:
    if args.repeats is not None and not 1 <= args.repeats <= 1000:
        print(f"bench: --repeats must be in [1, 1000], got {args.repeats}", file=sys.stderr)
        return 2
    try:
        with CLIProgress("bench", args.quiet).phase("measuring", 0) as phase:
            report = run_bench(args.quick, args.device, args.repeats, app=False if args.no_app else None, progress=phase,
                               with_classroom=not args.no_classroom)  # fmt: skip
    except (ValueError, RuntimeError) as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.format == "json" else format_report(report))
    return 0
