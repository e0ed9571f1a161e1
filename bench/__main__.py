"""Benchmark ltx_core against the official implementation (`ltx_video`) and diffusers, in one run.

Measurements (--only): step (one transformer forward on a CFG batch of 2), sample (the full base pipeline to
latents: schedule, CFG, Euler steps), vae_decode, upsample (latent upsampler), e2e (sampling + decode to a video),
lora (ours only: the step without a LoRA, with a LoRA on the trainer's layers (rank 1/16 of the width: 128 on the 2B)
applied at compute time, and with the same LoRA merged into the weights; ratios to the step without a LoRA, and the
LoRA's bytes), gguf (the step with the block weights in the config's dtype, in fp8, and as GGUF Q8_0 / Q4_K files read
by ours and by diffusers; ratios to the dense step, the weights' bytes; the transformer split into 32 heads of the
same width, as GGUF files carry no config).
All three implementations are built from one architecture description and share one set of seeded random
weights (no checkpoint download); inputs, dtype and settings are equal. The sampling recipe is CFG 3 without
STG (diffusers' LTXPipeline has no STG); diffusers samples with its own FlowMatch scheduler (same step count).
Ours' step gets the text as ours' sampler hands it over: padding that every row masks dropped (an exact saving
made once per generation; the reference and diffusers attend over all of it).

Timing: one fresh subprocess per measurement builds every implementation, runs each --warmup times, then
--repeats rounds, each round running every implementation once in a rotated order (interleaved A/B/C), and
reports the median (and min/max). CUDA timings synchronise before and after each run.

Peak memory: one more fresh subprocess per (measurement, implementation) that builds only that implementation,
warms it up once, then resets the kernel's peak-RSS counter (`echo 5 > /proc/self/clear_refs`) and runs it once.
That subprocess runs with MALLOC_MMAP_THRESHOLD_=65536, so glibc maps every large buffer on its own and unmaps it
when freed: RSS then follows the live tensors instead of what the allocator keeps cached. Reported: peak RSS
(VmHWM, whole process: weights + runtime + activations) and the growth of the peak over the RSS just before the
run (activations and temporaries). Where clear_refs is unavailable the peak is getrusage's ru_maxrss (never
reset, so it also covers building the model). On CUDA: torch.cuda max allocated (reset before the run) and its
growth over the allocation before it.

Wall time is the headline (ratios of medians: "ours/..." columns). Also reported: ratios of the process CPU time
of each run, all threads ("cpu o/..."; `cpu_time_ratios` in the JSON), and ratios of the fastest runs ("min o/...";
`min_ratios`): on a shared machine other load only ever adds time, so these are less disturbed by it.

Correctness guard: the timing worker also reports each output's relative L2 difference to the reference's
output (gguf: also to ours dense holding the values each variant stores) (diffusers' sampling uses another scheduler, so its sample/e2e differences are not meaningful; ours' e2e
video differs from the reference's by the decode noise, which the reference draws from torch's global RNG and ours
from a generator derived from the seed).

Examples:
  python -m bench --device cpu --out bench_results.json          # the CPU config, a few minutes on 2 cores
  python -m bench --device cuda --config cuda-13b --out gpu.json  # released shapes (default on cuda: cuda-2b)
  python -m bench --device cpu --only step --repeats 9 --no-memory
  python -m bench --backend openvino      # ours eager vs ours on OpenVINO fp32 / int8 vs official (config cpu-ov)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from . import configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------------ worker side


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _sync(device):
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _rel(a, b) -> float | None:
    import torch

    if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.shape != b.shape:
        return None
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def worker(args) -> dict:
    import torch

    from . import models

    cfg = configs.get(args.config)
    cfg.update(compile=args.compile, lean=args.lean, fp8_matmul=args.fp8_matmul, scratch=args._scratch)
    torch.set_num_threads(args.threads)
    impls = args.impls.split(",")
    torch.manual_seed(0)
    with torch.no_grad():
        fns = models.build(args.measure, cfg, impls)
        if args.worker == "prepare":  # OpenVINO conversions, alone in a process: the timing worker reads the IR
            for fn in fns.values():
                fn()
            return {}
        if args.worker == "time":
            return _timed(args, fns, impls, cfg["device"])
        (name,) = impls  # memory: a single implementation in this process
        return _peak_memory(fns[name], cfg["device"])


def _timed(args, fns: dict, impls: list[str], device) -> dict:
    """Warm-up, the outputs' differences (to the reference, and to what the builder registered in models.COMPARE),
    then the interleaved timed rounds."""
    import gc

    from . import models

    outs = {}
    for name in impls:
        for _ in range(args.warmup):
            outs[name] = fns[name]()
            _sync(device)
    reference = configs.VARIANTS[args.measure][2] if args.measure in configs.VARIANTS else "reference"
    errors = {name: _rel(outs[name], outs.get(reference)) for name in impls}
    same = {name: _rel(outs[name], models.COMPARE[name]()) for name in impls if name in models.COMPARE}
    del outs
    gc.collect()
    times = {name: [] for name in impls}
    cpu_times = {name: [] for name in impls}
    for r in range(args.repeats):
        order = impls[r % len(impls):] + impls[: r % len(impls)]
        for name in order:
            _sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            out = fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            cpu_times[name].append(time.process_time() - c0)
            del out
    result = {"times_s": times, "cpu_times_s": cpu_times, "rel_l2_vs_reference": errors, "info": models.INFO}
    if same:
        result["rel_l2_vs_same_values"] = same
    return result


def _peak_memory(fn, device) -> dict:
    """Peak memory of one run of `fn` after a warm-up run (see the module docstring)."""
    import gc

    import torch

    fn()
    _sync(device)
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {"cuda_peak_allocated_mb": peak / 2**20, "cuda_peak_growth_mb": (peak - before) / 2**20,
                "rss_mb": _rss_kb("VmRSS") / 1024}
    reset = _reset_peak_rss()
    before = _rss_kb("VmRSS")
    fn()
    if reset:
        peak = _rss_kb("VmHWM")
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss_mb": peak / 1024, "peak_rss_growth_mb": (peak - before) / 1024, "peak_reset": reset}


# ------------------------------------------------------------------------------------------------ driver side


def _spawn(args, measure, worker_kind, impls) -> dict:
    cmd = [sys.executable, "-m", "bench", "--_worker", worker_kind, "--_measure", measure, "--_impls", ",".join(impls),
           "--config", args.config, "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--warmup", str(args.warmup), "--_scratch", args.scratch] + (["--compile"] if args.compile else []) + (
               ["--lean", str(args.lean)] if args.lean else []) + (["--fp8-matmul"] if args.fp8_matmul else [])
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONWARNINGS="ignore")
    if worker_kind == "mem":
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    env["LTX_OPENVINO_CACHE"] = os.path.join(args.scratch, "openvino")  # converted by the first worker, then read
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-3000:]
        return {"error": f"worker {worker_kind}/{measure}/{','.join(impls)} failed (rc {proc.returncode}):\n{tail}"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    return {"error": f"no result from worker: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"}


def _fmt(x, unit=""):
    if x is None:
        return "-"
    if unit == "s":
        return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"
    return f"{x:.0f}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--config", default=None, help=f"one of {sorted(configs.CONFIGS)} (default: cpu, or cuda-2b on cuda)")
    p.add_argument("--only", default=None, help="comma-separated measurements (default: all; with --backend openvino "
                                               f"{','.join(configs.OPENVINO_DEFAULT_MEASUREMENTS)})")
    p.add_argument("--impls", default=None, help="comma-separated: ours,reference,diffusers (with --backend openvino "
                                                f"also {','.join(configs.OV_IMPLS)}; its default "
                                                f"{','.join(configs.OPENVINO_DEFAULT_IMPLS)})")
    p.add_argument("--backend", choices=("torch", "openvino"), default="torch",
                   help="openvino: also ours' transformer run by OpenVINO with fp32 and int8 (NNCF) weights, in the "
                        "config cpu-ov by default; conversions happen in the warm-up (not timed), cached for the run")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds after warm-up (median reported; >= 5)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads (default: all cores)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-implementation peak-memory subprocesses")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile ours' transformer blocks (compiled during warm-up, which is not timed)")
    p.add_argument("--fp8-matmul", action="store_true",
                   help="ours with fp8 block weights multiplied in fp8 (Transformer3D.use_fp8_matmul)")
    p.add_argument("--lean", type=float, default=None, metavar="GIB",
                   help="run ours in its smallest-memory setting: fp8 block weights held in CPU memory and streamed "
                        "to the device block by block, the VAE decode tiled to fit GIB (ratios then compare "
                        "different settings; the point is ours' peak memory)")
    p.add_argument("--out", default="bench_results.json", help="JSON results file")
    p.add_argument("--_worker", choices=("time", "mem", "prepare"), help=argparse.SUPPRESS)
    p.add_argument("--_measure", help=argparse.SUPPRESS)
    p.add_argument("--_impls", help=argparse.SUPPRESS)
    p.add_argument("--_scratch", help=argparse.SUPPRESS)  # the driver's temporary folder (GGUF files)
    return p


def _backend_defaults(p, args) -> None:
    """The config, measurements and implementations not given, for the backend; OpenVINO checked to be installed."""
    openvino = args.backend == "openvino"
    if openvino and not args._worker:
        from ltx_core.openvino import backend_problem

        problem = backend_problem("int8")
        if problem:
            p.error(problem)
    args.config = args.config or ("cpu-ov" if openvino else "cpu" if args.device == "cpu" else "cuda-2b")
    args.only = args.only or ",".join(configs.OPENVINO_DEFAULT_MEASUREMENTS if openvino else configs.MEASUREMENTS)
    args.impls = args.impls or ",".join(configs.OPENVINO_DEFAULT_IMPLS if openvino else configs.IMPLS)


def _measure(args, m: str, impls: list[str]) -> dict:
    """One measurement: the interleaved timing subprocess, then (unless --no-memory) one peak-memory subprocess per
    implementation; with medians, minima and ours' ratios when the timing succeeded. A measurement of variants
    (configs.VARIANTS) runs its own variants instead of `impls`, with ratios to its baseline variant."""
    if m in configs.VARIANTS:
        impls = list(configs.VARIANTS[m][0])
    impls = [i for i in impls if i not in configs.OV_IMPLS or m in configs.OV_MEASUREMENTS]
    converted = [i for i in impls if i in configs.OV_IMPLS]
    if converted:
        print(f"[bench] {m}: converting {','.join(converted)} to OpenVINO (or reading the IR) ...", file=sys.stderr,
              flush=True)
        prepared = _spawn(args, m, "prepare", converted)
        if "error" in prepared:
            return {"timing": prepared}
    print(f"[bench] {m}: timing {','.join(impls)} (interleaved, {args.repeats} rounds) ...", file=sys.stderr,
          flush=True)
    entry = {"timing": _spawn(args, m, "time", impls)}
    if not args.no_memory:
        entry["memory"] = {}
        for impl in impls:
            print(f"[bench] {m}: peak memory of {impl} ...", file=sys.stderr, flush=True)
            entry["memory"][impl] = _spawn(args, m, "mem", [impl])
    timing = entry["timing"]
    if "times_s" in timing:
        med = {k: statistics.median(v) for k, v in timing["times_s"].items()}
        entry["median_s"] = med
        entry["min_s"] = {k: min(v) for k, v in timing["times_s"].items()}
        cpu = {k: statistics.median(v) for k, v in timing["cpu_times_s"].items()}
        entry["median_cpu_s"] = cpu
        if m in configs.VARIANTS:
            base = configs.VARIANTS[m][1]
            entry["ratios"] = {f"{k}/{base}": med[k] / med[base] for k in med if k != base}
            entry["cpu_time_ratios"] = {f"{k}/{base}": cpu[k] / cpu[base] for k in cpu if k != base}
            entry["min_ratios"] = {f"{k}/{base}": entry["min_s"][k] / entry["min_s"][base] for k in med if k != base}
        elif "ours" in med:
            entry["ratios"] = {f"ours/{k}": med["ours"] / med[k] for k in med if k != "ours"}
            entry["cpu_time_ratios"] = {f"ours/{k}": cpu["ours"] / cpu[k] for k in cpu if k != "ours"}
            entry["min_ratios"] = {f"ours/{k}": entry["min_s"]["ours"] / entry["min_s"][k] for k in med if k != "ours"}
    if timing.get("info"):
        entry["info"] = timing["info"]
    return entry


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)
    _backend_defaults(p, args)

    if args._worker:
        args.worker, args.measure, args.impls = args._worker, args._measure, args._impls
        print("BENCH_RESULT " + json.dumps(worker(args)), flush=True)
        return

    cfg = configs.get(args.config)
    if cfg["device"] != args.device:
        p.error(f"config {args.config} is for {cfg['device']}")
    measures = [m for m in args.only.split(",") if m]
    impls = [i for i in args.impls.split(",") if i]
    for m in measures:
        if m not in configs.MEASUREMENTS:
            p.error(f"unknown measurement {m!r}")
    results = {"config_name": args.config, "config": cfg, "repeats": args.repeats, "warmup": args.warmup,
               "threads": args.threads, "compile": args.compile, "lean_gib": args.lean, "fp8_matmul": args.fp8_matmul,
               "backend": args.backend, "host": platform.node(), "python": platform.python_version(), "measurements": {}}
    try:
        import torch

        results["torch"] = torch.__version__
    except ImportError:
        pass
    started = time.time()
    # Files the workers share (the gguf measurement's GGUF files: written by the first worker, read by the others).
    with tempfile.TemporaryDirectory(prefix="ltx-bench-") as args.scratch:
        for m in measures:
            results["measurements"][m] = _measure(args, m, impls)
            with open(args.out, "w") as f:  # partial results survive an interrupted run
                json.dump(results, f, indent=1)
    results["wall_s"] = time.time() - started
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    _table(results, impls)
    _openvino_table(results)
    print(f"\nwrote {args.out} ({results['wall_s']:.0f} s)")


def _table(results, impls):
    mem_key = "cuda_peak_allocated_mb" if results["config"]["device"] == "cuda" else "peak_rss_mb"
    grow_key = "cuda_peak_growth_mb" if results["config"]["device"] == "cuda" else "peak_rss_growth_mb"
    print(f"\nconfig {results['config_name']} ({results['config']['dtype']}), threads {results['threads']}, "
          f"ours {'compiled' if results.get('compile') else 'eager'}"
          f"{', fp8 + block streaming + decode for %g GiB' % results['lean_gib'] if results.get('lean_gib') else ''}"
          f"{', fp8 matmuls' if results.get('fp8_matmul') else ''}, "
          f"median of {results['repeats']}; memory: peak MB (growth over pre-run MB)")
    if all(m in configs.VARIANTS for m in results["measurements"]):
        impls = []  # no measurement of the implementations: no table of them
    head = f"{'measure':<11}" + "".join(f"{i:>22}" for i in impls) + "".join(
        f"{'ours/' + i[:4]:>11}" for i in impls if i != "ours") + "".join(
        f"{'cpu o/' + i[:4]:>11}" for i in impls if i != "ours") + "".join(
        f"{'min o/' + i[:4]:>11}" for i in impls if i != "ours") + "   rel.err vs ref"
    if impls:
        print(head)
    for m, e in results["measurements"].items():
        if m in configs.VARIANTS:
            continue
        if "median_s" not in e:
            print(f"{m:<11} ERROR: {e['timing'].get('error', '?')[:500]}")
            continue
        row = f"{m:<11}"
        for i in impls:
            mem = e.get("memory", {}).get(i, {})
            ms = f" {_fmt(mem.get(mem_key))}({_fmt(mem.get(grow_key))})" if mem_key in mem else ""
            row += f"{_fmt(e['median_s'].get(i), 's') + ms:>22}"
        for i in impls:
            if i != "ours":
                row += f"{e['ratios'].get('ours/' + i, float('nan')):>11.3f}"
        for key in ("cpu_time_ratios", "min_ratios"):
            for i in impls:
                if i != "ours":
                    row += f"{e.get(key, {}).get('ours/' + i, float('nan')):>11.3f}"
        errs = e["timing"].get("rel_l2_vs_reference", {})
        row += "   " + " ".join(f"{k[:4]}={v:.1e}" for k, v in errs.items() if v is not None and k != "reference")
        print(row)
    for m, e in results["measurements"].items():
        if m in configs.VARIANTS:
            _variants_table(m, e, mem_key, grow_key, results)


def _openvino_table(results):
    """Ours' transformer under OpenVINO next to ours eager, per measurement that ran it: time and peak RSS as
    fractions of eager's, and the output's difference to the official implementation's (eager's is in the table
    above)."""
    rows = [(m, i, e) for m, e in results["measurements"].items() if "median_s" in e
            for i in configs.OV_IMPLS if i in e["median_s"] and "ours" in e["median_s"]]
    if not rows:
        return
    print("\nOpenVINO (ours' transformer converted; VAE in torch) vs ours eager: time, peak RSS MB (growth)")
    print(f"  {'measure':<11}{'impl':<9}{'median':>10}{'x eager':>9}{'peak RSS':>18}{'x eager':>9}   rel.err vs ref")
    for m, i, e in rows:
        mem, eager_mem = (e.get("memory", {}).get(k, {}) for k in (i, "ours"))
        peak, eager_peak = mem.get("peak_rss_mb"), eager_mem.get("peak_rss_mb")
        rss = f"{_fmt(peak)}({_fmt(mem.get('peak_rss_growth_mb'))})" if peak else "-"
        rss_ratio = f"{peak / eager_peak:.3f}" if peak and eager_peak else "-"
        err = e["timing"].get("rel_l2_vs_reference", {}).get(i)
        print(f"  {m:<11}{i:<9}{_fmt(e['median_s'][i], 's'):>10}{e['median_s'][i] / e['median_s']['ours']:>9.3f}"
              f"{rss:>18}{rss_ratio:>9}   {_err(err)}")


def _variants_table(m: str, e: dict, mem_key: str, grow_key: str, results: dict):
    """A measurement of variants: one row per variant, ratios to the baseline variant; the weights' bytes and the
    differences to what each variant stores where the measurement reports them."""
    variants, base, reference = configs.VARIANTS[m]
    info = e.get("info", {})
    labels = info.get("labels", {})
    if m == "lora":
        _lora_header(info)
    if m == "gguf":
        _gguf_header(info, results)
    if "median_s" not in e:
        print(f"  ERROR: ...{e['timing'].get('error', '?')[-500:]}")  # the tail: the exception itself
        return
    errs = e["timing"].get("rel_l2_vs_reference", {})
    same = e["timing"].get("rel_l2_vs_same_values", {})
    weights = info.get("weight_bytes", {})
    err_head = f"rel.err vs {labels.get(reference, reference)}"
    print(f"  {'variant':<11}{'median':>22}{'x ' + labels.get(base, base):>11}{'cpu x':>11}{'min x':>11}"
          + (f"{'weights':>11}" if weights else "") + f"   {err_head}" + ("  vs same values" if same else ""))
    for v in variants:
        mem = e.get("memory", {}).get(v, {})
        ms = f" {_fmt(mem.get(mem_key))}({_fmt(mem.get(grow_key))})" if mem_key in mem else ""
        key = f"{v}/{base}"
        ratios = [1.0 if v == base else e.get(k, {}).get(key, float("nan"))
                  for k in ("ratios", "cpu_time_ratios", "min_ratios")]
        err = "n/a" if v in info.get("random_values", ()) else _err(None if v == reference else errs.get(v))
        print(f"  {labels.get(v, v):<11}{_fmt(e['median_s'][v], 's') + ms:>22}" + "".join(f"{r:>11.3f}" for r in ratios)
              + (f"{_fmt(weights.get(v, 0) / 2**20) + ' MiB':>11}" if weights else "")
              + f"   {err:<{len(err_head)}}" + (f"  {_err(same.get(v))}" if same else ""))


def _err(x) -> str:
    return "-" if x is None else f"{x:.1e}"


def _lora_header(info: dict):
    print("\nlora: ours, one step at the step shape")
    if not info:
        return
    print(f"  a rank-{info['rank']} LoRA on {info['layers']} layers ({', '.join(configs.LORA_LAYERS)} of every "
          f"block): {info['lora_bytes'] / 2**20:.1f} MiB in {info['compute_dtype']}; its matmuls add "
          f"{100 * info['lora_flops_fraction']:.1f}% to the FLOPs of the layers it patches")
    print(f"  applied at compute time (lora; entering and leaving applied_loras: {_fmt(info['apply_s'], 's')}), "
          f"or merged into a copy of those weights (merged; W += up @ down once: {_fmt(info.get('merge_s'), 's')})")


def _gguf_header(info: dict, results: dict):
    t = results["config"]["transformer"]
    heads = (t["num_attention_heads"], t["attention_head_dim"])
    was = "" if heads[0] == configs.GGUF_HEADS else (
        f" (the config's {heads[0]} heads of {heads[1]} split into {configs.GGUF_HEADS}: a GGUF file carries no "
        f"config, and ours' loader takes the releases' {configs.GGUF_HEADS} heads)")
    print(f"\ngguf: ours and diffusers, one step at the step shape; transformer with {configs.GGUF_HEADS} heads of "
          f"{t['num_attention_heads'] * t['attention_head_dim'] // configs.GGUF_HEADS}{was}")
    if not info:
        return
    dense = info["labels"]["dense"]
    fp8 = "multiplied in fp8 (--fp8-matmul)" if results.get("fp8_matmul") else f"upcast per layer to {dense}"
    print(f"  the block Linear weights ({info['layers']} layers, {info['block_weights'] / 1e6:.1f} M weights) held "
          f"as: {dense} (the config's dtype: the baseline); fp8: float8_e4m3fn, {fp8}; q8_0, "
          f"q4_k: GGUF files read by ours (QuantizedLinear, dequantized per layer in torch); diff_*: the same files "
          f"through diffusers' GGUF quantizer (compute dtype {dense}). The other tensors: {dense}")
    print(f"  Q4_K files hold random bytes (gguf cannot quantize K-quants): timing and memory only. weights: the "
          f"transformer's tensor bytes. rel.err vs {dense}: to the seeded weights' output; vs same values: to ours "
          f"{dense} holding the values the variant stores (fp8-rounded; gguf's numpy dequantization of the file)")


if __name__ == "__main__":
    main()
