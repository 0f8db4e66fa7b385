#!/usr/bin/env python3
"""Helpers of scripts/gpu-check.sh, standard library only (the GPU machine's python3 may lack
numpy or safetensors outside its torch install).

  gpu_check.py cuda-lib-dirs            folders of the CUDA libraries of installed NVIDIA wheels
  gpu_check.py take CASE OUT NAME=SRC…  copy tensors of a safetensors file under new names
  gpu_check.py report WORK OUT.json     gather the step logs of WORK into one JSON report
  gpu_check.py conv-tuning BENCH.json   the summary of a `bench --json` run's conv_tuning
"""

import csv
import glob
import json
import math
import os
import socket
import struct
import sys
import time
import zlib

# --- safetensors, read and written without dependencies ----------------------------------------

FORMATS = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8), "I32": ("i", 4)}


def read_safetensors(path):
    """{name: (dtype, shape, raw bytes)} of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], body[begin:end])
    return out


def values(tensor):
    dtype, _shape, raw = tensor
    code, size = FORMATS[dtype]
    return struct.unpack(f"<{len(raw) // size}{code}", raw)


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def max_abs_diff(a, b):
    """Max |a - b| (NaN when any difference is NaN), or None when the shapes differ."""
    if a[1] != b[1]:
        return None
    worst = 0.0
    for x, y in zip(values(a), values(b)):
        d = abs(x - y)
        if math.isnan(d):
            return float("nan")
        worst = max(worst, d)
    return worst


# --- the report --------------------------------------------------------------------------------


def text(path, limit=4000):
    """The end of a log file (its last `limit` characters), or None."""
    try:
        with open(path, errors="replace") as f:
            s = f.read()
    except OSError:
        return None
    return s[-limit:]


def head(path, limit=4000):
    """The start of a file (its first `limit` characters), or None."""
    try:
        with open(path, errors="replace") as f:
            return f.read(limit)
    except OSError:
        return None


def step_record(work, name):
    """rc, seconds and the ends of stdout/stderr of step `name`; None if it never ran."""
    base = os.path.join(work, name)
    if not os.path.exists(base + ".rc"):
        skipped = text(base + ".skipped")
        return {"ok": False, "skipped": skipped.strip()} if skipped else None
    rc = int(open(base + ".rc").read().strip() or -1)
    rec = {
        "rc": rc,
        "timed_out": rc in (124, 137),
        "seconds": float(open(base + ".secs").read().strip() or "nan"),
        "command": text(base + ".cmd"),
        "stderr_tail": text(base + ".err", 1500),
    }
    rec["ok"] = rc == 0
    return rec


def json_object(path):
    """The last line of `path` that parses as a JSON object, or None."""
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if isinstance(v, dict):
            return v
    return None


def json_step(work, name):
    """step_record of a step that prints one JSON object, with that object as `result` (None
    if it printed none); ok when the step exited 0 and printed one."""
    rec = step_record(work, name)
    if rec is not None and "rc" in rec:
        rec["result"] = json_object(os.path.join(work, name + ".out"))
        rec["ok"] = rec["rc"] == 0 and rec["result"] is not None
    return rec


def parity(work, rec, case_file, want, out_file, tol):
    """Compares `out` of out_file with tensor `want` of case_file."""
    if rec is None or rec.get("rc") != 0:
        return rec
    try:
        got = read_safetensors(out_file)["out"]
        ref = read_safetensors(case_file)[want]
        d = max_abs_diff(got, ref)
    except Exception as e:  # a missing or unreadable file is a result too
        rec.update(ok=False, error=f"cannot compare: {e}")
        return rec
    rec.update(
        reference=f"{os.path.basename(case_file)}:{want}",
        shape=got[1],
        max_abs_diff=d,
        tolerance=tol,
        ok=d is not None and not math.isnan(d) and d <= tol,
    )
    return rec


def loss_rows(path):
    """The step lines (JSON objects with a loss) of `train --json` output in `path`."""
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if isinstance(v, dict) and "loss" in v:
            rows.append(v)
    return rows


def training(work, rec):
    """Did the loss of the smoke run fall? Compares the first and last tenth of its steps."""
    if rec is None or "rc" not in rec:  # never ran, or skipped for lack of time
        return rec
    rows = loss_rows(os.path.join(work, "train.out"))
    # Stopped by SIGINT at the time limit is the normal end: the run checkpoints and exits.
    stopped = rec["rc"] in (0, 124, 130)
    rec["steps"] = len(rows)
    if len(rows) < 4:
        rec.update(ok=False, error=f"only {len(rows)} steps logged")
        return rec
    k = max(2, len(rows) // 10)
    first = sum(r["loss"] for r in rows[:k]) / k
    last = sum(r["loss"] for r in rows[-k:]) / k
    rec.update(
        loss_first_mean=first,
        loss_last_mean=last,
        window=k,
        loss_fell=last < first,
        images_per_s=rows[-1].get("images_per_s"),
        elapsed_s=rows[-1].get("elapsed_s"),
        ok=stopped and last < first and math.isfinite(last),
    )
    return rec


# --- PNG, read without dependencies (8-bit, not interlaced: what ddpm-lab writes) -----------


def read_png(path):
    """(width, height, channels, pixel bytes) of an 8-bit non-interlaced PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or interlace != 0:
        raise ValueError(f"{path}: only 8-bit non-interlaced PNGs are read here")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        out += line
        prev = line
    return width, height, channels, bytes(out)


def image_stats(pixels):
    n = len(pixels)
    mean = sum(pixels) / n
    return {"mean": mean, "std": math.sqrt(sum((p - mean) ** 2 for p in pixels) / n)}


def sampling(work, sampler):
    """The same checkpoint and seed sampled on the device and on the CPU: both ran, both drew
    something (not a flat grid), and how far apart their pixels are (0-255 levels)."""
    names = [f"sample_{sampler}_device", f"sample_{sampler}_cpu"]
    rec_device, rec_cpu = (step_record(work, n) for n in names)
    out = {"device": rec_device, "cpu": rec_cpu}
    if not (rec_device and rec_cpu and rec_device.get("ok") and rec_cpu.get("ok")):
        out["ok"] = False
        return out
    try:
        a, b = (read_png(os.path.join(work, n + ".png")) for n in names)
    except Exception as e:  # a missing or unreadable grid is a result too
        out.update(ok=False, error=f"cannot read the grids: {e}")
        return out
    if a[:3] != b[:3]:
        out.update(ok=False, error=f"grids differ in size: {a[:3]} vs {b[:3]}")
        return out
    diffs = [abs(x - y) for x, y in zip(a[3], b[3])]
    far = sum(d > 2 for d in diffs) / len(diffs)
    stats = image_stats(a[3])
    out.update(
        device_image=stats,
        max_level_diff=max(diffs),
        mean_level_diff=sum(diffs) / len(diffs),
        share_of_pixels_more_than_2_levels_apart=far,
        # Float rounding differs between the GPU's kernels and the CPU's, and DDPM's 200 steps
        # can amplify it; a different sampler or a broken kernel moves most pixels far.
        same_images=far < 0.02,
        ok=stats["std"] > 1.0,
    )
    return out


def resumed(work, rec):
    """Training resumed on the CPU from the device's checkpoint: it ran and its loss is finite."""
    if rec is None or "rc" not in rec:
        return rec
    rows = loss_rows(os.path.join(work, "resume_cpu.out"))
    rec.update(
        steps=[r.get("step") for r in rows],
        losses=[r["loss"] for r in rows],
        ok=rec["rc"] == 0 and bool(rows) and all(math.isfinite(r["loss"]) for r in rows),
    )
    return rec


def gpu_memory(work, name):
    """Peak used GPU memory (MiB) while step `name` ran, over the first (idle) reading."""
    try:
        readings = [
            float(l) for l in open(os.path.join(work, name + ".gpumem")).read().split() if l
        ]
    except (OSError, ValueError):
        return None
    if len(readings) < 2:
        return None
    return {"idle_mib": readings[0], "peak_mib": max(readings),
            "peak_over_idle_mib": max(readings) - readings[0], "readings": len(readings)}


def cuda_ab_step(setting):
    """The step name gpu-check.sh gives the bench with CUDA_AB's NAME=VALUE `setting`."""
    return "bench_cuda_" + setting.replace("=", "_").replace("-", "_")


def report(work, out_path):
    info = json.load(open(os.path.join(work, "info.json")))
    steps = {}
    steps["nvidia_smi"] = step_record(work, "nvidia_smi")
    if steps["nvidia_smi"] is not None:
        steps["nvidia_smi"]["output"] = text(os.path.join(work, "nvidia_smi.out"), 6000)
    steps["binary"] = step_record(work, "binary")
    if steps["binary"] is not None:
        steps["binary"]["output"] = text(os.path.join(work, "binary.out"), 2000)
    tol = float(info.get("parity_tolerance", 1e-4))
    fx = info.get("fixtures") or ""
    steps["parity_forward_case"] = parity(
        work,
        step_record(work, "parity_forward"),
        os.path.join(fx, "forward_case.safetensors"),
        "out_convnext",
        os.path.join(work, "parity_forward.safetensors"),
        tol,
    )
    steps["parity_q_sample_case"] = parity(
        work,
        step_record(work, "parity_q_sample"),
        os.path.join(fx, "q_sample_case.safetensors"),
        "eps_convnext",
        os.path.join(work, "parity_q_sample.safetensors"),
        tol,
    )
    algos = info.get("conv_algos") or []
    algo_checks = [f"check_device_conv_{a}" for a in algos]
    # The checks that look for a fault when the first check fails (the CUDA setup undone, then
    # ddpm-lab's kernels: none, each alone, the faulty ones left out) run only then.
    # (`_large`: the same search after the check at the benchmarks' batch failed.)
    fault_checks = ["check_device_cuda_setup_undone"] + [
        name
        for at in ("", "_large")
        for name in (
            f"check_device{at}_kernels_none",
            *[f"check_device{at}_kernel_{k}" for k in info.get("kernel_names") or []],
            f"check_device{at}_kernels_left_out",
        )
    ]
    large = ["check_device_large"] if info.get("check_large_batch") else []
    for name in ("check_device", "check_device_current", *large, *fault_checks, *algo_checks):
        rec = json_step(work, name)
        if rec is not None and "result" in rec:
            rec["ok"] = rec["ok"] and (rec["result"] or {}).get("ok") is True
        if rec is not None or name not in fault_checks:
            steps[name] = rec
    steps["train_smoke"] = training(work, step_record(work, "train"))
    for sampler in ("ddim", "ddpm"):
        steps[f"sample_{sampler}_device_vs_cpu"] = sampling(work, sampler)
    steps["resume_cpu"] = resumed(work, step_record(work, "resume_cpu"))
    steps["sample_after_cpu"] = step_record(work, "sample_after_cpu")
    benches = ["bench", "pytorch_bench"]
    if info.get("stock_run"):
        benches.append("bench_stock")
    # A kernel a failed check left out has no A/B: the visit ran without it.
    left_out = set(info.get("kernels_left_out") or [])
    without = [f"bench_without_{k}" for k in info.get("kernel_ab") or [] if k not in left_out]
    benches += without
    setups = {s: cuda_ab_step(s) for s in info.get("cuda_ab") or []}
    benches += setups.values()
    algo_benches = [f"bench_conv_{a}" for a in algos]
    if "cudnn" in algos and info.get("tf32_runs"):
        algo_benches.append("bench_conv_cudnn_tf32")
    benches += algo_benches
    if info.get("backward_ab"):
        benches.append("bench_backward_plain")
    if info.get("tf32_runs"):
        benches += ["bench_tf32", "pytorch_bench_tf32"]
    for name in benches:
        rec = json_step(work, name)
        if rec is not None and "result" in rec:
            rec["gpu_memory"] = gpu_memory(work, name)
        steps[name] = rec

    rec = step_record(work, "nsys_train")
    if rec is not None:
        # Both CSV summaries as text: top kernels by GPU time, CUDA API calls by count and time.
        rec["summaries"] = head(os.path.join(work, "nsys_train.out"), 20000)
        steps["nsys_train"] = rec

    def result(name):
        """A step's parsed JSON output ({} where it did not run or gave none)."""
        return (steps.get(name) or {}).get("result") or {}

    def over(ours_name, theirs_name, theirs_label="pytorch"):
        ours = result(ours_name)
        theirs = result(theirs_name)
        r = {}
        for key in ("train_images_per_s", "forward_images_per_s"):
            if ours.get(key) and theirs.get(key):
                r[key] = ours[key] / theirs[key]
        if ours.get("sample_seconds") and theirs.get("sample_seconds"):
            r["sample_speed"] = theirs["sample_seconds"] / ours["sample_seconds"]
        mo = (steps.get(ours_name) or {}).get("gpu_memory") or {}
        mt = (steps.get(theirs_name) or {}).get("gpu_memory") or {}
        if mo.get("peak_over_idle_mib") and mt.get("peak_over_idle_mib"):
            r[f"gpu_memory_{theirs_label}_over_ours"] = (
                mt["peak_over_idle_mib"] / mo["peak_over_idle_mib"]
            )
        # The training step's own peak, as `bench` measures it (device-wide, that workload only).
        if ours.get("peak_gpu_mb_train") and theirs.get("peak_gpu_mb_train"):
            r[f"peak_gpu_mb_train_{theirs_label}_over_ours"] = (
                theirs["peak_gpu_mb_train"] / ours["peak_gpu_mb_train"]
            )
        return r

    ratios = over("bench", "pytorch_bench")
    if info.get("tf32_runs"):
        ratios = {"float32": ratios, "tf32": over("bench_tf32", "pytorch_bench_tf32")}
    # ddpm-lab's own ops (ops::device_conv on a GPU) over candle's stock ones.
    own_over_stock = over("bench", "bench_stock", "stock") if info.get("stock_run") else None
    # Each kernel's worth: ddpm-lab with it over ddpm-lab without it (above 1: it pays).
    kernel_gain = {
        k: over("bench", f"bench_without_{k}", "without")
        for k in info.get("kernel_ab") or [] if k not in left_out
    }

    # Each CUDA device setting's worth: ddpm-lab's defaults over that one undone (above 1: the
    # default pays).
    setup_gain = {s: over("bench", step, "other") for s, step in setups.items()}
    # The releasing backward pass over candle's own (above 1: it pays; memory: plain over ours).
    backward_gain = (
        over("bench", "bench_backward_plain", "plain") if info.get("backward_ab") else None
    )

    # Each other conv algorithm over im2col, the default (above 1: it is faster).
    conv_algo_gain = {a: over(f"bench_conv_{a}", "bench", "im2col") for a in algos}
    # And `cudnn` and `auto`, which run the whole benchmark, over PyTorch: the table should one
    # win.
    algo_over_pytorch = {
        a: over(f"bench_conv_{a}", "pytorch_bench") for a in ("cudnn", "auto") if a in algos
    }
    if "cudnn" in algos and info.get("tf32_runs"):
        algo_over_pytorch["cudnn_tf32"] = over("bench_conv_cudnn_tf32", "pytorch_bench_tf32")
    # The cuDNN the `cudnn` algorithm runs (null where it does not load), and which of its
    # algorithms ran, shape by shape, in its benchmark.
    cudnn = result("bench").get("cudnn")
    cudnn_ran = cudnn_algos(result("bench_conv_cudnn"))
    # The host's share of ddpm-lab's forward pass: near 1, the host's kernel launches bound it
    # rather than the GPU.
    host_queue_share = queue_share(result("bench"))
    # How many ops each workload ran (on a GPU, each a kernel launch or more).
    ops = op_counts(result("bench"))
    # `auto`'s timings shape by shape: which algorithm each product of each conv kept.
    tuning = conv_tuning(result("bench_conv_auto"))

    for name in ("ncu_train", "ncu_torch_train", "ncu_train_conv_algo"):
        rec = step_record(work, name)
        if rec is not None:
            if "rc" in rec:
                rec["kernels"] = ncu_kernel_times(os.path.join(work, f"{name}.out"))
                rec["ok"] = rec["rc"] == 0 and rec["kernels"]["launches"] > 0
            steps[name] = rec

    # The stock-ops A/B and the profiles are extras: they run last, when time is left, and do
    # not decide whether the visit checked out.
    optional = (
        "bench_stock",
        "bench_backward_plain",
        "nsys_train",
        "ncu_train",
        "ncu_torch_train",
        "ncu_train_conv_algo",
        *without,
        *setups.values(),
        *fault_checks,
        *algo_checks,
        *algo_benches,
    )
    required = {k: v for k, v in steps.items() if k not in optional}
    ran = {k: v for k, v in required.items() if v is not None}
    doc = {
        "host": socket.gethostname(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **info,
        "ok": all(v.get("ok") for v in ran.values()) and len(ran) == len(required),
        "failed": sorted(k for k, v in required.items() if v is None or not v.get("ok")),
        "optional_failed": sorted(
            k for k in optional if k in steps and not (steps[k] or {}).get("ok")
        ),
        "ddpm_lab_over_pytorch": ratios,
        "own_ops_over_stock_ops": own_over_stock,
        "own_kernel_gain": kernel_gain,
        "cuda_setup_gain": setup_gain,
        "backward_release_gain": backward_gain,
        "conv_algo_gain": conv_algo_gain,
        "conv_algo_over_pytorch": algo_over_pytorch,
        "cudnn": cudnn,
        "cudnn_algos": cudnn_ran,
        "conv_tuning": tuning,
        "host_queue_share": host_queue_share,
        "op_counts": ops,
        "steps": steps,
    }
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, out_path)
    print(f"{out_path}: ok={doc['ok']} failed={doc['failed']} "
          f"built_from={doc.get('built_from')}", file=sys.stderr)
    # The figures a visit is for, on one screen (the JSON has the rest).
    print(f"optional_failed={doc['optional_failed']}", file=sys.stderr)
    print(f"cuda_setup_fallback={doc.get('cuda_setup_fallback')} "
          f"kernels_left_out={doc.get('kernels_left_out')} cudnn={cudnn}", file=sys.stderr)
    for label, table in (
        ("over pytorch", ratios),
        ("own kernel gain", kernel_gain),
        ("cuda setup gain (defaults over each undone)", setup_gain),
        ("backward release gain (over candle's own backward pass)", backward_gain),
        ("conv algo gain (over im2col)", conv_algo_gain),
        ("cudnn and auto over pytorch", algo_over_pytorch),
        ("cudnn's algorithms by product (cudnn-algo-N: scripts/README.md)", cudnn_ran),
        ("conv tuning (auto)", tuning),
        ("host queue share of ddpm-lab's forward pass", host_queue_share),
        ("ops per workload", ops),
    ):
        print(f"{label}: {json.dumps(table, sort_keys=True)}", file=sys.stderr)


# ncu's --csv units of gpu__time_duration, in milliseconds.
NCU_MS = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}


# What a kernel is, by its name, for comparing two profiles (ddpm-lab's and PyTorch's) op by op:
# the first category whose patterns match (lower-case substrings), else "other".
KERNEL_CATEGORIES = [
    ("conv data movement", ("im2col", "col2im", "channels_first", "bias_fill")),
    ("conv (cuDNN)", ("convolve", "conv2d", "winograd", "implicit", "dgrad", "wgrad_alg",
                      "fprop", "cudnn")),
    ("matrix products", ("gemm", "gemv", "splitk", "cutlass", "xmma")),
    ("depthwise conv", ("depthwise",)),
    # PyTorch's GroupNorm: RowwiseMoments, ComputeFusedParams, GammaBetaBackward, ...
    ("normalisation", ("group_norm", "layer_norm", "batch_norm", "norm_", "moments",
                       "fusedparams", "gammabeta", "internalgradients")),
    ("softmax", ("softmax",)),
    ("optimiser and EMA", ("multi_tensor", "adam", "foreach", "lerp")),
    ("reductions", ("reduce", "sum", "max", "min", "mean")),
    ("copies", ("copy", "cat", "memcpy", "memset", "const_set", "fill")),
    # candle's unary kernels are u<op>_<dtype>, its binary ones b<op>_<dtype>.
    ("element-wise", ("elementwise", "unary", "binary", "affine", "gelu", "silu", "badd", "bmul",
                      "bsub", "bdiv", "bmaximum", "bminimum", "uexp", "usqr", "usqrt", "uerf",
                      "uneg", "uabs", "utanh", "usin", "ucos", "urecip", "cast_", "where_",
                      "eq_", "ne_", "lt_", "le_", "gt_", "ge_", "bias", "add", "mul")),
]


def kernel_category(name):
    n = name.lower()
    for cat, patterns in KERNEL_CATEGORIES:
        if any(p in n for p in patterns):
            return cat
    return "other"


def ncu_kernel_times(path, top=30):
    """GPU time per kernel name from `ncu --metrics gpu__time_duration.sum --csv` output: the
    number of launches, the total in ms, the `top` kernels by time as
    [name, ms, share of the total, launches], and the time and launches per category
    (`kernel_category`) as {category: [ms, launches]}."""
    try:
        with open(path, errors="replace") as f:
            rows = [line for line in f if line.startswith('"')]
    except OSError:
        rows = []
    ms, count = {}, {}
    for r in csv.DictReader(rows):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        try:
            v = float(r["Metric Value"].replace(",", "")) * NCU_MS.get(r.get("Metric Unit"), 1e-6)
        except (KeyError, ValueError):
            continue
        name = r.get("Kernel Name", "?")
        ms[name] = ms.get(name, 0.0) + v
        count[name] = count.get(name, 0) + 1
    total = sum(ms.values())
    ranked = sorted(ms.items(), key=lambda kv: -kv[1])[:top]
    categories = {}
    for name, t in ms.items():
        entry = categories.setdefault(kernel_category(name), [0.0, 0])
        entry[0] += t
        entry[1] += count[name]
    return {
        "launches": sum(count.values()),
        "gpu_ms": total,
        "top": [[n, t, t / total if total else 0.0, count[n]] for n, t in ranked],
        "categories": dict(sorted(categories.items(), key=lambda kv: -kv[1][0])),
    }


def queue_share(bench):
    """Of `bench --json`'s forward pass, the seconds until the host had queued it over the
    seconds until the device had finished it (medians; near 1: launch-bound). The training
    step and sampling read from the device along the way, so theirs say nothing of it."""
    r = bench or {}
    q, w = r.get("forward_queued_seconds"), r.get("forward_seconds")
    return {"forward": q / w} if q and w else {}


# PyTorch eager's ops for the blog UNet's workloads (scripts/roofline.py, PyTorch 2.15): the
# counts ddpm-lab's are set beside. Each op is a kernel launch or more on either side.
PYTORCH_OPS = {"train_step": 504, "forward": 218, "sample_step": 231}


def op_counts(bench):
    """`bench --json`'s ops per training step, forward pass and sampling step (the op census:
    each one kernel launch or more), with PyTorch eager's for the blog UNet beside them."""
    r = bench or {}
    ours = {k: r.get(f"ops_{k}") for k in PYTORCH_OPS if r.get(f"ops_{k}") is not None}
    if not ours:
        return {}
    return {"ddpm_lab": ours, "pytorch_eager_blog_unet": PYTORCH_OPS}


def conv_tuning(bench):
    """The summary of `bench --json`'s `conv_tuning` (DDPM_LAB_CONV_ALGO=auto), per product:
    the conv shapes timed, how many kept each algorithm, how many runs of each failed, and the
    milliseconds of one run of every shape summed for each candidate (a shape without a time
    for a candidate counts its im2col time, else the kept one's) and for the ones kept. Each
    shape counts once, however often a step runs it."""
    records = (bench or {}).get("conv_tuning") or []
    out = {}
    for r in records:
        p = out.setdefault(
            r["product"], {"shapes": 0, "kept": {}, "failed": {}, "ms": {}, "kept_ms": 0.0}
        )
        p["shapes"] += 1
        p["kept"][r["chosen"]] = p["kept"].get(r["chosen"], 0) + 1
        for a in r.get("failed") or []:
            p["failed"][a] = p["failed"].get(a, 0) + 1
        p["kept_ms"] += r["times_ms"][r["chosen"]]
    names = sorted({a for r in records for a in r["times_ms"]})
    for r in records:
        ms = out[r["product"]]["ms"]
        times = r["times_ms"]
        fallback = times.get("im2col", times[r["chosen"]])
        for a in names:
            ms[a] = ms.get(a, 0.0) + times.get(a, fallback)
    return out


def cudnn_algos(bench):
    """`bench --json`'s `cudnn_algos` (DDPM_LAB_CONV_ALGO=cudnn), per product: how many conv
    shapes ran each of cuDNN's algorithms, by cuDNN's number (`cudnn-algo-N`)."""
    out = {}
    for r in (bench or {}).get("cudnn_algos") or []:
        per = out.setdefault(r.get("product", "?"), {})
        key = f"cudnn-algo-{r.get('algo')}"
        per[key] = per.get(key, 0) + 1
    return out


def cuda_lib_dirs():
    """lib folders of the NVIDIA wheels on sys.path (torch's cuBLAS, cuRAND, NVRTC, ...)."""
    dirs = []
    for base in sys.path:
        for d in sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib"))):
            if os.path.isdir(d) and d not in dirs:
                dirs.append(d)
    print(":".join(dirs))


def main(argv):
    if len(argv) >= 2 and argv[1] == "cuda-lib-dirs":
        cuda_lib_dirs()
    elif len(argv) >= 4 and argv[1] == "take":
        src = read_safetensors(argv[2])
        picked = {}
        for spec in argv[4:]:
            new, old = spec.split("=", 1)
            picked[new] = src[old]
        write_safetensors(argv[3], picked)
    elif len(argv) == 3 and argv[1] == "conv-tuning":
        with open(argv[2]) as f:
            print(json.dumps(conv_tuning(json.load(f)), sort_keys=True))
    elif len(argv) == 4 and argv[1] == "report":
        report(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
