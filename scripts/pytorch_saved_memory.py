#!/usr/bin/env python3
"""What PyTorch keeps for the backward pass of the blog UNet's training step, on the CPU.

Usage: python3 scripts/pytorch_saved_memory.py [--batch-size 128] [--config blog]

Every tensor that autograd saves during the forward pass and loss (`saved_tensors_hooks`),
counted once per storage, parameters left out: PyTorch's side of
`cargo run --release --example kept_memory` (the bytes ddpm-lab's graph keeps alive), for the
same model (scripts/pytorch_bench.py's copy of the blog's) and batch. Needs torch and einops.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--config", default="blog")
    args = ap.parse_args()
    torch.manual_seed(0)
    model, size = pytorch_bench.make_model(args.config)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    b = args.batch_size
    x = torch.randn(b, 1, size, size)
    t = torch.randint(0, 300, (b,))
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = F.smooth_l1_loss(torch.randn_like(x), model(x, t))
    mib = sum(saved.values()) / 2**20
    print(f"{args.config} UNet, batch {b}, PyTorch {torch.__version__}: autograd saves "
          f"{mib:.1f} MiB in {len(saved)} tensors (parameters left out)")
    loss.backward()


if __name__ == "__main__":
    main()
