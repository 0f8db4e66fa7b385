#!/usr/bin/env python3
"""Parity fixtures for today's blog UNet (`--unet current`), made from the seeds' PyTorch code.

The classes below are copied from ../shared/seeds/001 (the blog's current text: Residual,
Upsample, Downsample, SinusoidalPositionEmbeddings, WeightStandardizedConv2d, Block,
ResnetBlock, Attention, LinearAttention, PreNorm, Unet -> `Unet001`) and 002 (lucidrains'
`Unet` constructor -> `Unet002`: 7x7 init conv, 8 groups, `learned_variance`). Seed 002 also
shows lucidrains' later LinearAttention (v / (h*w), a LayerNorm with a `g` parameter) without
defining that LayerNorm; the fixtures keep seed 001's blocks for both constructors, so the 002
cases test 002's Unet wiring and options, not that later attention.

Writes tests/fixtures/current_<case>.safetensors, each with the state_dict (`w.<name>`), the
inputs (`x`, `t`, `x_self_cond`) and the outputs (`out`: no x_self_cond, `out_cond`: with it).

Usage:
  ~/.cache/ddpm-lab/venv-bench/bin/python scripts/make_current_fixtures.py
  ~/.cache/ddpm-lab/venv-bench/bin/python scripts/make_current_fixtures.py --check CASE FILE
      loads a ddpm-lab weights file (safetensors) into that case's PyTorch model with
      strict=True and checks its forward against the same file's own fixture inputs.
  ~/.cache/ddpm-lab/venv-bench/bin/python scripts/make_current_fixtures.py --check FILE \
      [--ddpm-lab target/release/ddpm-lab]
      the same for any run's weights (RUN/checkpoints/step-N/model.safetensors or
      ema.safetensors; either UNet, the lab's `quick` recipe included): the model is built from
      the config.json beside them (the blog's first UNet from scripts/pytorch_bench.py,
      `--unet lucidrains` from the denoising-diffusion-pytorch package), and
      with --ddpm-lab its output is compared with `ddpm-lab forward` on the same inputs.

Needs torch, einops and safetensors (scripts/compare.sh makes that venv; `pip install
safetensors` where an older one lacks it).
"""

import argparse
import json
import math
import os
import sys
from functools import partial
from inspect import isfunction

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from einops.layers.torch import Rearrange
from safetensors.torch import load_file, save_file
from torch import einsum, nn

# ----------------------------------------------------------------- seed 001, verbatim


def exists(x):
    return x is not None


def default(val, d):
    if exists(val):
        return val
    return d() if isfunction(d) else d


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, *args, **kwargs):
        return self.fn(x, *args, **kwargs) + x


def Upsample(dim, dim_out=None):
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(dim, default(dim_out, dim), 3, padding=1),
    )


def Downsample(dim, dim_out=None):
    return nn.Sequential(
        Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2),
        nn.Conv2d(dim * 4, default(dim_out, dim), 1),
    )


class SinusoidalPositionEmbeddings(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, time):
        device = time.device
        half_dim = self.dim // 2
        embeddings = math.log(10000) / (half_dim - 1)
        embeddings = torch.exp(torch.arange(half_dim, device=device) * -embeddings)
        embeddings = time[:, None] * embeddings[None, :]
        embeddings = torch.cat((embeddings.sin(), embeddings.cos()), dim=-1)
        return embeddings


class WeightStandardizedConv2d(nn.Conv2d):
    def forward(self, x):
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3

        weight = self.weight
        mean = reduce(weight, "o ... -> o 1 1 1", "mean")
        var = reduce(weight, "o ... -> o 1 1 1", partial(torch.var, unbiased=False))
        normalized_weight = (weight - mean) * (var + eps).rsqrt()

        return F.conv2d(
            x,
            normalized_weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )


class Block(nn.Module):
    def __init__(self, dim, dim_out, groups=8):
        super().__init__()
        self.proj = WeightStandardizedConv2d(dim, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)
        self.act = nn.SiLU()

    def forward(self, x, scale_shift=None):
        x = self.proj(x)
        x = self.norm(x)

        if exists(scale_shift):
            scale, shift = scale_shift
            x = x * (scale + 1) + shift

        x = self.act(x)
        return x


class ResnetBlock(nn.Module):
    def __init__(self, dim, dim_out, *, time_emb_dim=None, groups=8):
        super().__init__()
        self.mlp = (
            nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2))
            if exists(time_emb_dim)
            else None
        )

        self.block1 = Block(dim, dim_out, groups=groups)
        self.block2 = Block(dim_out, dim_out, groups=groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, time_emb=None):
        scale_shift = None
        if exists(self.mlp) and exists(time_emb):
            time_emb = self.mlp(time_emb)
            time_emb = rearrange(time_emb, "b c -> b c 1 1")
            scale_shift = time_emb.chunk(2, dim=1)

        h = self.block1(x, scale_shift=scale_shift)
        h = self.block2(h)
        return h + self.res_conv(x)


class Attention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        hidden_dim = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden_dim, dim, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.to_qkv(x).chunk(3, dim=1)
        q, k, v = map(
            lambda t: rearrange(t, "b (h c) x y -> b h c (x y)", h=self.heads), qkv
        )
        q = q * self.scale

        sim = einsum("b h d i, b h d j -> b h i j", q, k)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        attn = sim.softmax(dim=-1)

        out = einsum("b h i j, b h d j -> b h i d", attn, v)
        out = rearrange(out, "b h (x y) d -> b (h d) x y", x=h, y=w)
        return self.to_out(out)


class LinearAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        hidden_dim = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)

        self.to_out = nn.Sequential(nn.Conv2d(hidden_dim, dim, 1), nn.GroupNorm(1, dim))

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.to_qkv(x).chunk(3, dim=1)
        q, k, v = map(
            lambda t: rearrange(t, "b (h c) x y -> b h c (x y)", h=self.heads), qkv
        )

        q = q.softmax(dim=-2)
        k = k.softmax(dim=-1)

        q = q * self.scale
        context = torch.einsum("b h d n, b h e n -> b h d e", k, v)

        out = torch.einsum("b h d e, b h d n -> b h e n", context, q)
        out = rearrange(out, "b h c (x y) -> b (h c) x y", h=self.heads, x=h, y=w)
        return self.to_out(out)


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.fn = fn
        self.norm = nn.GroupNorm(1, dim)

    def forward(self, x):
        x = self.norm(x)
        return self.fn(x)


class Unet001(nn.Module):
    def __init__(
        self,
        dim,
        init_dim=None,
        out_dim=None,
        dim_mults=(1, 2, 4, 8),
        channels=3,
        self_condition=False,
        resnet_block_groups=4,
    ):
        super().__init__()

        self.channels = channels
        self.self_condition = self_condition
        input_channels = channels * (2 if self_condition else 1)

        init_dim = default(init_dim, dim)
        self.init_conv = nn.Conv2d(input_channels, init_dim, 1, padding=0)

        dims = [init_dim, *map(lambda m: dim * m, dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))

        block_klass = partial(ResnetBlock, groups=resnet_block_groups)

        time_dim = dim * 4

        self.time_mlp = nn.Sequential(
            SinusoidalPositionEmbeddings(dim),
            nn.Linear(dim, time_dim),
            nn.GELU(),
            nn.Linear(time_dim, time_dim),
        )

        self.downs = nn.ModuleList([])
        self.ups = nn.ModuleList([])
        num_resolutions = len(in_out)

        for ind, (dim_in, dim_out) in enumerate(in_out):
            is_last = ind >= (num_resolutions - 1)

            self.downs.append(
                nn.ModuleList(
                    [
                        block_klass(dim_in, dim_in, time_emb_dim=time_dim),
                        block_klass(dim_in, dim_in, time_emb_dim=time_dim),
                        Residual(PreNorm(dim_in, LinearAttention(dim_in))),
                        Downsample(dim_in, dim_out)
                        if not is_last
                        else nn.Conv2d(dim_in, dim_out, 3, padding=1),
                    ]
                )
            )

        mid_dim = dims[-1]
        self.mid_block1 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)
        self.mid_attn = Residual(PreNorm(mid_dim, Attention(mid_dim)))
        self.mid_block2 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)

        for ind, (dim_in, dim_out) in enumerate(reversed(in_out)):
            is_last = ind == (len(in_out) - 1)

            self.ups.append(
                nn.ModuleList(
                    [
                        block_klass(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                        block_klass(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                        Residual(PreNorm(dim_out, LinearAttention(dim_out))),
                        Upsample(dim_out, dim_in)
                        if not is_last
                        else nn.Conv2d(dim_out, dim_in, 3, padding=1),
                    ]
                )
            )

        self.out_dim = default(out_dim, channels)

        self.final_res_block = block_klass(dim * 2, dim, time_emb_dim=time_dim)
        self.final_conv = nn.Conv2d(dim, self.out_dim, 1)

    def forward(self, x, time, x_self_cond=None):
        if self.self_condition:
            x_self_cond = default(x_self_cond, lambda: torch.zeros_like(x))
            x = torch.cat((x_self_cond, x), dim=1)

        x = self.init_conv(x)
        r = x.clone()

        t = self.time_mlp(time)

        h = []

        for block1, block2, attn, downsample in self.downs:
            x = block1(x, t)
            h.append(x)

            x = block2(x, t)
            x = attn(x)
            h.append(x)

            x = downsample(x)

        x = self.mid_block1(x, t)
        x = self.mid_attn(x)
        x = self.mid_block2(x, t)

        for block1, block2, attn, upsample in self.ups:
            x = torch.cat((x, h.pop()), dim=1)
            x = block1(x, t)

            x = torch.cat((x, h.pop()), dim=1)
            x = block2(x, t)
            x = attn(x)

            x = upsample(x)

        x = torch.cat((x, r), dim=1)

        x = self.final_res_block(x, t)
        return self.final_conv(x)


# ----------------------------------------------------------------- seed 002's constructor


class Unet002(Unet001):
    """Seed 002's `Unet.__init__` (7x7 init conv, 8 groups, learned_variance); the forward
    pass is the same as 001's. `learned_sinusoidal_cond`/`random_fourier_features` are left
    out: their embedding class is not in the seeds."""

    def __init__(
        self,
        dim,
        init_dim=None,
        out_dim=None,
        dim_mults=(1, 2, 4, 8),
        channels=3,
        self_condition=False,
        resnet_block_groups=8,
        learned_variance=False,
    ):
        default_out_dim = channels * (1 if not learned_variance else 2)
        super().__init__(
            dim,
            init_dim=init_dim,
            out_dim=default(out_dim, default_out_dim),
            dim_mults=dim_mults,
            channels=channels,
            self_condition=self_condition,
            resnet_block_groups=resnet_block_groups,
        )
        input_channels = channels * (2 if self_condition else 1)
        init_dim = default(init_dim, dim)
        self.init_conv = nn.Conv2d(input_channels, init_dim, 7, padding=3)


# ----------------------------------------------------------------- cases

# name -> (constructor, kwargs, image size, batch). Small widths keep the files small.
CASES = {
    # seed 001, three stages (both Downsample and the last-stage conv, Upsample, ...).
    "001": (Unet001, dict(dim=8, dim_mults=(1, 1, 2), channels=1), 8, 2),
    # seed 001 with self-conditioning, RGB.
    "001_sc": (Unet001, dict(dim=8, dim_mults=(1, 2), channels=3, self_condition=True), 8, 2),
    # seed 002: 7x7 init, 8 groups, self-conditioning and a learned variance.
    "002_sc_var": (
        Unet002,
        dict(dim=8, dim_mults=(1, 2), channels=1, self_condition=True, learned_variance=True),
        8,
        2,
    ),
}


def build(case):
    ctor, kwargs, size, batch = CASES[case]
    torch.manual_seed(17)
    model = ctor(**kwargs).eval()
    # Non-trivial norms and biases (PyTorch starts GroupNorm at 1 and 0).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or ".to_out.1.weight" in name:
                p.add_(0.1 * torch.randn_like(p))
            if name.endswith("norm.bias") or ".to_out.1.bias" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model, kwargs, size, batch


def inputs(kwargs, size, batch):
    g = torch.Generator().manual_seed(3)
    c = kwargs["channels"]
    x = torch.randn(batch, c, size, size, generator=g)
    t = torch.tensor([3, 250][:batch], dtype=torch.int64)
    cond = torch.randn(batch, c, size, size, generator=g).clamp(-1, 1)
    return x, t, cond


def make(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for case in CASES:
        model, kwargs, size, batch = build(case)
        x, t, cond = inputs(kwargs, size, batch)
        with torch.no_grad():
            out = model(x, t)
            out_cond = model(x, t, cond)
        tensors = {f"w.{k}": v.contiguous() for k, v in model.state_dict().items()}
        tensors.update(x=x, t=t, x_self_cond=cond, out=out, out_cond=out_cond)
        path = os.path.join(out_dir, f"current_{case}.safetensors")
        save_file(tensors, path)
        n = sum(v.numel() for k, v in model.state_dict().items())
        print(f"{path}: {len(model.state_dict())} tensors, {n} parameters, out {tuple(out.shape)}")


def model_of_run(weights_file):
    """The PyTorch model of the ddpm-lab run configuration beside `weights_file`."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights_file)), "config.json")
    if not os.path.isfile(path):
        sys.exit(f"{path} is missing: give a case (001, 001_sc, 002_sc_var) before the file")
    with open(path) as f:
        cfg = json.load(f)
    m = cfg["model"]
    # The arguments both UNets' constructors share.
    kwargs = dict(
        dim=m["dim"],
        init_dim=m.get("init_dim"),
        out_dim=m.get("out_dim"),
        dim_mults=tuple(m["dim_mults"]),
        channels=m["channels"],
        self_condition=m.get("self_condition", False),
        resnet_block_groups=m.get("resnet_block_groups", 8),
    )
    if m.get("arch") == "lucidrains":
        # The package itself (pip install denoising-diffusion-pytorch; see
        # scripts/make_lucidrains_fixtures.py for the rest of what it imports).
        from denoising_diffusion_pytorch import Unet as LucidrainsUnet

        del kwargs["resnet_block_groups"]
        kwargs.update(
            learned_variance=m.get("learned_variance", False),
            full_attn=tuple(m["full_attn"]) if m.get("full_attn") else None,
        )
        # Heads per stage (one value: every stage), where the run set them.
        for key in ("attn_heads", "attn_dim_head"):
            if m.get(key):
                kwargs[key] = tuple(m[key])
        return LucidrainsUnet(**kwargs).eval(), kwargs, cfg["image_size"], cfg.get("timesteps", 200)
    if m.get("arch") != "current":
        return blog_model_of(m, kwargs), kwargs, cfg["image_size"], cfg.get("timesteps", 200)
    # Seed 002's constructor is the one with the 7x7 init conv and the learned variance.
    if m.get("init_conv_kernel") == 7 or m.get("learned_variance"):
        if m.get("init_conv_kernel") not in (None, 7):
            sys.exit(f"init_conv_kernel {m['init_conv_kernel']} has no PyTorch constructor here")
        ctor = Unet002
        kwargs["learned_variance"] = m.get("learned_variance", False)
    elif m.get("init_conv_kernel") in (None, 1):
        ctor = Unet001
    else:
        sys.exit(f"init_conv_kernel {m['init_conv_kernel']} has no PyTorch constructor here")
    return ctor(**kwargs).eval(), kwargs, cfg["image_size"], cfg.get("timesteps", 200)


def blog_model_of(m, shared):
    """The blog's first UNet (scripts/pytorch_bench.py's class) of a run's `model` config
    (`shared`: the arguments both UNets take): ConvNeXt or ResNet blocks, and ddpm-lab's
    options (self-conditioning, attention in the middle only, the init conv's kernel), as the
    lab's `quick` recipe trains it."""
    if m.get("learned_variance"):
        sys.exit("a learned variance is seed 002's option: the blog's first UNet has none")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pytorch_bench import Unet as BlogUnet

    return BlogUnet(
        **shared,
        with_time_emb=m.get("with_time_emb", True),
        use_convnext=m.get("block", "convnext") == "convnext",
        convnext_mult=m.get("convnext_mult", 2),
        stage_attention=m.get("stage_attention", True),
        init_conv_kernel=m.get("init_conv_kernel") or 7,
    ).eval()


def load_strictly(model, weights_file):
    """Loads the safetensors file into `model` as load_state_dict(strict=True) does, saying
    which keys differ where they do; returns the state loaded."""
    state = load_file(weights_file)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"keys differ: missing {missing}, unexpected {unexpected}")
    model.load_state_dict(state, strict=True)
    return state


def check_run(weights_file, ddpm_lab=None):
    """Loads a run's weights into the PyTorch model its config.json describes, strictly, and
    (given the ddpm-lab binary) compares its output with `ddpm-lab forward` on the same x, t
    and x_self_cond; exits with an error where they differ by more than 1e-4 of the largest."""
    model, kwargs, size, timesteps = model_of_run(weights_file)
    state = load_strictly(model, weights_file)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, kwargs["channels"], size, size, generator=g)
    t = torch.tensor([0, timesteps - 1], dtype=torch.int64)
    cond = torch.randn(x.shape, generator=g) if model.self_condition else None
    with torch.no_grad():
        out = model(x, t, cond)
    print(f"{weights_file}: {len(state)} tensors load into PyTorch strictly; output {tuple(out.shape)}, finite {bool(torch.isfinite(out).all())}")
    if not ddpm_lab:
        return
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        case, got = os.path.join(d, "case.safetensors"), os.path.join(d, "out.safetensors")
        save_file({"x": x, "t": t, **({"x_self_cond": cond} if cond is not None else {})}, case)
        subprocess.run([ddpm_lab, "forward", "--weights", weights_file, "--input", case, "--out", got], check=True)
        theirs = load_file(got)["out"]
    diff = (theirs - out).abs().max().item()
    scale = out.abs().max().item()
    print(f"ddpm-lab forward vs PyTorch: max |diff| {diff:.2e} (largest output {scale:.3g})")
    if diff > 1e-4 * max(scale, 1.0):
        sys.exit("the outputs differ")


def check(case, weights_file, fixture_dir):
    """Loads ddpm-lab's weights into PyTorch (strict: same keys, same shapes) and runs it."""
    model, kwargs, size, batch = build(case)
    state = load_strictly(model, weights_file)
    fx = load_file(os.path.join(fixture_dir, f"current_{case}.safetensors"))
    with torch.no_grad():
        out = model(fx["x"], fx["t"], fx["x_self_cond"] if model.self_condition else None)
    print(f"{weights_file}: {len(state)} tensors load into PyTorch strictly; output {tuple(out.shape)}, finite {bool(torch.isfinite(out).all())}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    ap.add_argument("--check", nargs="+", metavar="[CASE] FILE")
    ap.add_argument("--ddpm-lab", metavar="BIN", help="with --check FILE: compare with this binary's `forward`")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.check and len(a.check) == 1:
        check_run(a.check[0], a.ddpm_lab)
    elif a.check and len(a.check) == 2:
        check(a.check[0], a.check[1], a.out)
    elif a.check:
        ap.error("--check takes FILE, or CASE FILE")
    else:
        make(a.out)


if __name__ == "__main__":
    main()
