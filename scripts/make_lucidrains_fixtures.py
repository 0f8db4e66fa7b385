#!/usr/bin/env python3
"""Parity fixtures for lucidrains' released UNet (`--unet lucidrains`), made with the package.

Builds `denoising_diffusion_pytorch.Unet` (the package as published on PyPI; the fixtures in
tests/fixtures were made with 2.3.4) for each case below, gives its RMSNorm gains values other
than 1 (the package starts them at 1), and writes tests/fixtures/lucidrains_<case>.safetensors
with the state_dict (`w.<name>`), the inputs (`x`, `t`, `x_self_cond`) and the outputs (`out`:
no x_self_cond, `out_cond`: with it).

Usage:
  python3 -m venv venv && venv/bin/pip install torch einops safetensors \
      && venv/bin/pip install --no-deps denoising-diffusion-pytorch==2.3.4
  venv/bin/python scripts/make_lucidrains_fixtures.py [OUT_DIR]
"""

import os
import sys
from importlib.metadata import version

import torch
from safetensors.torch import save_file

from denoising_diffusion_pytorch import Unet

# The same inputs as today's blog UNet's fixtures (this script's folder is on sys.path).
from make_current_fixtures import inputs

CASES = {
    # The package's defaults: linear attention, full attention in the last stage and the
    # middle; three stages (both Downsample and the last stage's conv, Upsample).
    "default": (dict(dim=8, dim_mults=(1, 2, 2), channels=1), 8, 2),
    # Every option ddpm-lab takes: self-conditioning, a learned variance, RGB, another init
    # width, full attention in the first stage instead of the last.
    "options": (
        dict(
            dim=8,
            dim_mults=(1, 2),
            channels=3,
            init_dim=12,
            self_condition=True,
            learned_variance=True,
            full_attn=(True, False),
        ),
        8,
        2,
    ),
    # Other heads per stage (`attn_heads`, `attn_dim_head`); the middle attention takes the
    # last stage's.
    "heads": (
        dict(dim=8, dim_mults=(1, 2), channels=1, attn_heads=(2, 3), attn_dim_head=(8, 16)),
        8,
        2,
    ),
}


def build(case):
    kwargs, size, batch = CASES[case]
    torch.manual_seed(17)
    model = Unet(**kwargs).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".g"):
                p.add_(0.1 * torch.randn_like(p))
    return model, kwargs, size, batch


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "fixtures"
    )
    os.makedirs(out_dir, exist_ok=True)
    print(f"denoising-diffusion-pytorch {version('denoising-diffusion-pytorch')}, torch {torch.__version__}")
    for case in CASES:
        model, kwargs, size, batch = build(case)
        x, t, cond = inputs(kwargs, size, batch)
        with torch.no_grad():
            out = model(x, t)
            out_cond = model(x, t, cond) if kwargs.get("self_condition") else out.clone()
        tensors = {f"w.{k}": v.contiguous() for k, v in model.state_dict().items()}
        tensors.update(x=x, t=t, x_self_cond=cond, out=out, out_cond=out_cond)
        path = os.path.join(out_dir, f"lucidrains_{case}.safetensors")
        save_file(tensors, path)
        os.chmod(path, 0o644)
        n = sum(v.numel() for v in model.state_dict().values())
        print(f"{path}: {len(model.state_dict())} tensors, {n} parameters, out {tuple(out.shape)}")


if __name__ == "__main__":
    main()
