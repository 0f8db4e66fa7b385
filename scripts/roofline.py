#!/usr/bin/env python3
"""The floor under each benchmark workload of the blog UNet on a GPU: its arithmetic and its bytes.

Usage: python3 scripts/roofline.py [--config blog] [--batch-size 128] [--forward-batch 256]
           [--sample-batch 256] [--sample-steps 200] [--tflops 67] [--tf32-tflops 495]
           [--tb-per-s 4.3] [--measured FILE.json ...] [--json]

Runs each workload of `scripts/pytorch_bench.py` once on the CPU (training step with Adam,
forward pass, one sampling step, times the steps) and counts, op by op as PyTorch eager would
launch them on a GPU:

- the floating-point operations of its products (convs, matrix products; PyTorch's
  `FlopCounterMode`, forward and backward);
- the bytes each op reads and writes (every tensor argument and result once, a broadcast
  argument by the memory it spans, views left out since they launch nothing): what an eager run
  moves through device memory, cache reuse left out;
- the ops that launch kernels (views left out): each one launch or more (a conv's backward pass
  is one op that runs cuDNN's data and weight gradients and the bias's sum).

From these, at the given rates (default: the H200's datasheet float32 rate of 67 TFLOP/s and
TF32's 495, and the 4.3 TB/s a device-to-device copy moved on one here), the time of each op is
the larger of its arithmetic and its bytes, summed over the ops: the time an ideal eager run
would take with every kernel at its roofline. It also counts what an im2col conv adds: the
column matrix written and read again, for each dense conv's forward product, input gradient and
weight gradient (ddpm-lab's default CUDA conv algorithm; `DDPM_LAB_CONV_ALGO=implicit` never
writes it).

`--measured` takes `pytorch_bench.py` or `ddpm-lab bench --json` results (a gpu-check
results file's `pytorch` and `ddpm_lab` objects also do) and prints each one's time over the
roofline time. Needs torch and einops (as scripts/pytorch_bench.py).
"""
import argparse
import json
import os
import sys
from collections import Counter

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_bench  # noqa: E402

# Ops that only describe or query a tensor: no kernel, no bytes.
NO_KERNEL = {"_local_scalar_dense", "lift_fresh", "sym_size", "sym_stride", "sym_numel", "is_same_size"}


def spanned_bytes(t):
    """The bytes of memory `t` spans: its elements', or its storage's for a broadcast view."""
    return min(t.numel() * t.element_size(), t.untyped_storage().nbytes())


def is_view(func):
    """Whether `func` returns a view of an argument (it launches nothing)."""
    return any(
        r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns
    )


class Traffic(TorchDispatchMode):
    """Counts, per op name, the ops that launch kernels and the bytes they read and write."""

    def __init__(self):
        super().__init__()
        self.ops = Counter()
        self.bytes = Counter()
        self.col_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if is_view(func) or name in NO_KERNEL:
            return out
        ins = {}
        for t in tree_leaves((args, kwargs)):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                ins[(t.untyped_storage().data_ptr(), t.storage_offset(), t.shape)] = t
        outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        # An op whose results all share an argument's memory, and that is not in place
        # (`_unsafe_view`, say), made views: nothing ran.
        in_ptrs = {t.untyped_storage().data_ptr() for t in ins.values()}
        if (
            outs
            and not name.endswith("_")
            and all(t.untyped_storage().data_ptr() in in_ptrs for t in outs)
        ):
            return out
        self.ops[name] += 1
        self.bytes[name] += sum(spanned_bytes(t) for t in ins.values())
        self.bytes[name] += sum(spanned_bytes(t) for t in outs)
        if name in ("convolution", "convolution_backward"):
            self.col_bytes += im2col_bytes(name, args)
        return out


def im2col_bytes(name, args):
    """What an im2col conv adds to `name`'s bytes: its column matrices written and read back."""
    if name == "convolution":
        x, w, _bias, stride, padding, dilation, transposed, _opad, groups = args[:9]
    else:
        # convolution_backward(grad_output, input, weight, bias_sizes, stride, padding,
        # dilation, transposed, output_padding, groups, output_mask)
        _g, x, w, _bs, stride, padding, dilation, transposed, _opad, groups, mask = args[:11]
    k = w.shape[2] * w.shape[3]
    if groups != 1 or transposed:
        return 0  # depthwise convs run as kernels of their own; transposed ones are col2im
    if k == 1 and tuple(stride) == (1, 1) and tuple(padding) == (0, 0):
        return 0  # a 1×1 conv's column matrix is its input
    n, cin, h, wd = x.shape
    ho = (h + 2 * padding[0] - dilation[0] * (w.shape[2] - 1) - 1) // stride[0] + 1
    wo = (wd + 2 * padding[1] - dilation[1] * (w.shape[3] - 1) - 1) // stride[1] + 1
    col = n * cin * k * ho * wo * x.element_size()
    if name == "convolution":
        return 2 * col
    return 2 * col * (int(mask[0]) + int(mask[1]))


def workloads(a):
    """Each workload as (name, function, times it runs)."""
    torch.manual_seed(0)
    model, size = pytorch_bench.make_model(a.config)
    diff = pytorch_bench.Diffusion(a.sample_steps)
    # foreach: PyTorch's default on CUDA (one launch per op over a list of tensors).
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    x0 = torch.tanh(torch.randn(a.batch_size, 1, size, size))

    def train_step():
        opt.zero_grad()
        t = torch.randint(0, a.sample_steps, (a.batch_size,)).long()
        loss = diff.p_losses(model, x0, t)
        loss.backward()
        opt.step()

    # Adam's first step makes its moment buffers: the timed steps are later ones.
    train_step()
    xf = torch.tanh(torch.randn(a.forward_batch, 1, size, size))
    tf = torch.randint(0, a.sample_steps, (a.forward_batch,)).long()

    def forward():
        with torch.no_grad():
            model(xf, tf)

    xs = torch.randn(a.sample_batch, 1, size, size)

    def sample_step():
        t = torch.full((a.sample_batch,), a.sample_steps - 1, dtype=torch.long)
        diff.p_sample(model, xs, t, a.sample_steps - 1)

    return [
        ("train", train_step, 1, a.batch_size),
        ("forward", forward, 1, a.forward_batch),
        ("sample", sample_step, a.sample_steps, a.sample_batch),
    ]


def measured_seconds(path):
    """{workload: seconds} from a pytorch_bench.py or `ddpm-lab bench --json` result file."""
    with open(path) as f:
        data = json.load(f)
    found = {}
    for key in ("pytorch", "ddpm_lab"):
        if isinstance(data.get(key), dict):
            data = data[key]
    for name, keys in (
        ("train", ("train_step_seconds",)),
        ("forward", ("forward_seconds",)),
        ("sample", ("sample_seconds",)),
    ):
        for k in keys:
            if isinstance(data.get(k), (int, float)):
                found[name] = float(data[k])
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="blog")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--forward-batch", type=int, default=256)
    ap.add_argument("--sample-batch", type=int, default=256)
    ap.add_argument("--sample-steps", type=int, default=200)
    ap.add_argument("--tflops", type=float, default=67.0, help="float32 rate, TFLOP/s")
    ap.add_argument("--tf32-tflops", type=float, default=495.0, help="TF32 rate, TFLOP/s")
    ap.add_argument("--tb-per-s", type=float, default=4.3, help="memory bandwidth, TB/s")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--measured", nargs="*", default=[], help="result files to set beside")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bw = a.tb_per_s * 1e12
    results = {}
    for name, fn, times, batch in workloads(a):
        flops_counter = FlopCounterMode(display=False)
        traffic = Traffic()
        with flops_counter, traffic:
            fn()
        # Per-op rooflines need each op's flops beside its bytes: FlopCounterMode keeps them
        # per op name, so an op name's flops are set against the same name's bytes.
        per_op = flops_counter.get_flop_counts().get("Global", {})
        flops_by_name = Counter()
        for op, f in per_op.items():
            flops_by_name[op.__name__ if hasattr(op, "__name__") else str(op)] += f
        flops = sum(flops_by_name.values())
        total_bytes = sum(traffic.bytes.values())
        ops = sum(traffic.ops.values())

        def roofline(rate):
            s = 0.0
            for op, b in traffic.bytes.items():
                s += max(flops_by_name.get(op, 0) / rate, b / bw)
            return s

        r = {
            "batch": batch,
            "runs": times,
            "gflop": flops * times / 1e9,
            "gb_moved": total_bytes * times / 1e9,
            "ops": ops * times,
            "arithmetic_floor_s": flops * times / (a.tflops * 1e12),
            "bytes_floor_s": total_bytes * times / bw,
            "roofline_s": roofline(a.tflops * 1e12) * times,
            "roofline_tf32_s": roofline(a.tf32_tflops * 1e12) * times,
            "im2col_extra_gb": traffic.col_bytes * times / 1e9,
            "im2col_extra_s": traffic.col_bytes * times / bw,
            "top_bytes": [
                [op, round(b * times / 1e9, 3), traffic.ops[op] * times]
                for op, b in traffic.bytes.most_common(8)
            ],
        }
        results[name] = r
    measured = {path: measured_seconds(path) for path in a.measured}
    out = {
        "config": a.config,
        "torch": torch.__version__,
        "rates": {"tflops": a.tflops, "tf32_tflops": a.tf32_tflops, "tb_per_s": a.tb_per_s},
        "workloads": results,
        "measured": {
            path: {
                w: {"seconds": s, "over_roofline": s / results[w]["roofline_s"]}
                for w, s in m.items()
            }
            for path, m in measured.items()
        },
    }
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(
        f"{a.config} UNet, PyTorch {torch.__version__} eager's ops; float32 {a.tflops:g} TFLOP/s, "
        f"TF32 {a.tf32_tflops:g}, {a.tb_per_s:g} TB/s"
    )
    print(
        f"{'workload':<22}{'GFLOP':>9}{'GB':>9}{'ops':>10}{'flop floor':>12}"
        f"{'byte floor':>12}{'roofline':>10}{'TF32':>10}{'+im2col':>10}"
    )
    for name, r in results.items():
        label = f"{name} b{r['batch']}" + (f" ×{r['runs']}" if r["runs"] > 1 else "")
        print(
            f"{label:<22}{r['gflop']:>9.1f}{r['gb_moved']:>9.2f}{r['ops']:>10}"
            f"{ms(r['arithmetic_floor_s']):>12}{ms(r['bytes_floor_s']):>12}"
            f"{ms(r['roofline_s']):>10}{ms(r['roofline_tf32_s']):>10}{ms(r['im2col_extra_s']):>10}"
        )
    for name, r in results.items():
        print(f"{name}: most bytes in " + ", ".join(f"{op} {gb} GB ({n}×)" for op, gb, n in r["top_bytes"]))
    for path, m in out["measured"].items():
        print(
            f"{path}: "
            + ", ".join(f"{w} {ms(v['seconds'])} = {v['over_roofline']:.2f}× roofline" for w, v in m.items())
        )


def ms(seconds):
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
