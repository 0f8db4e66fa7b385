#!/usr/bin/env python3
"""PyTorch reference for `ddpm-lab bench`: the blog's UNet ("The Annotated Diffusion Model",
Hugging Face), timed on the same workloads (training step = forward + backward + Adam, no-grad
forward pass, DDPM sampling over all T steps), medians after warm-up, printed as one JSON object
with the same keys as `ddpm-lab bench --json`.

Usage: python3 scripts/pytorch_bench.py [--config blog|resnet|current|lucidrains|tiny] [--batch-size 128]
       [--threads 2] [--repeats 3] [--sample-repeats 1] [--device cpu|cuda[:N]] ...

On a GPU (`--device cuda`) every timed run ends with `torch.cuda.synchronize()`, and the JSON
adds the GPU's name, its peak allocated memory (`peak_gpu_mb`) and whether TF32 was allowed
(`--tf32 off`, the default: strict float32 like ddpm-lab's default; `on`; or `default`,
PyTorch's own: cuDNN convolutions in TF32, matmuls not).
"""

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from functools import partial
from inspect import isfunction

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import einsum, nn

# --- the blog's model, verbatim ----------------------------------------------------------------


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


def Upsample(dim):
    return nn.ConvTranspose2d(dim, dim, 4, 2, 1)


def Downsample(dim):
    return nn.Conv2d(dim, dim, 4, 2, 1)


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


class Block(nn.Module):
    def __init__(self, dim, dim_out, groups=8):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim_out, 3, padding=1)
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
    """https://arxiv.org/abs/1512.03385"""

    def __init__(self, dim, dim_out, *, time_emb_dim=None, groups=8):
        super().__init__()
        self.mlp = (
            nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out))
            if exists(time_emb_dim)
            else None
        )

        self.block1 = Block(dim, dim_out, groups=groups)
        self.block2 = Block(dim_out, dim_out, groups=groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, time_emb=None):
        h = self.block1(x)

        if exists(self.mlp) and exists(time_emb):
            time_emb = self.mlp(time_emb)
            h = rearrange(time_emb, "b c -> b c 1 1") + h

        h = self.block2(h)
        return h + self.res_conv(x)


class ConvNextBlock(nn.Module):
    """https://arxiv.org/abs/2201.03545"""

    def __init__(self, dim, dim_out, *, time_emb_dim=None, mult=2, norm=True):
        super().__init__()
        self.mlp = (
            nn.Sequential(nn.GELU(), nn.Linear(time_emb_dim, dim))
            if exists(time_emb_dim)
            else None
        )

        self.ds_conv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)

        self.net = nn.Sequential(
            nn.GroupNorm(1, dim) if norm else nn.Identity(),
            nn.Conv2d(dim, dim_out * mult, 3, padding=1),
            nn.GELU(),
            nn.GroupNorm(1, dim_out * mult),
            nn.Conv2d(dim_out * mult, dim_out, 3, padding=1),
        )

        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, time_emb=None):
        h = self.ds_conv(x)

        if exists(self.mlp) and exists(time_emb):
            assert exists(time_emb), "time embedding must be passed in"
            condition = self.mlp(time_emb)
            h = h + rearrange(condition, "b c -> b c 1 1")

        h = self.net(h)
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


class Unet(nn.Module):
    def __init__(
        self,
        dim,
        init_dim=None,
        out_dim=None,
        dim_mults=(1, 2, 4, 8),
        channels=3,
        with_time_emb=True,
        resnet_block_groups=8,
        use_convnext=True,
        convnext_mult=2,
        # Beyond the blog (ddpm-lab's model options; the defaults are the blog's model):
        # `self_condition` reads cat(x_self_cond or zeros, x), `stage_attention=False` keeps
        # attention to the middle (the stages' `.2` entries hold no weights), and the init
        # conv's kernel.
        self_condition=False,
        stage_attention=True,
        init_conv_kernel=7,
    ):
        super().__init__()

        self.channels = channels
        self.self_condition = self_condition

        init_dim = default(init_dim, dim // 3 * 2)
        input_channels = channels * (2 if self_condition else 1)
        self.init_conv = nn.Conv2d(
            input_channels, init_dim, init_conv_kernel, padding=init_conv_kernel // 2
        )

        dims = [init_dim, *map(lambda m: dim * m, dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))

        if use_convnext:
            block_klass = partial(ConvNextBlock, mult=convnext_mult)
        else:
            block_klass = partial(ResnetBlock, groups=resnet_block_groups)

        if with_time_emb:
            time_dim = dim * 4
            self.time_mlp = nn.Sequential(
                SinusoidalPositionEmbeddings(dim),
                nn.Linear(dim, time_dim),
                nn.GELU(),
                nn.Linear(time_dim, time_dim),
            )
        else:
            time_dim = None
            self.time_mlp = None

        self.downs = nn.ModuleList([])
        self.ups = nn.ModuleList([])
        num_resolutions = len(in_out)

        for ind, (dim_in, dim_out) in enumerate(in_out):
            is_last = ind >= (num_resolutions - 1)

            self.downs.append(
                nn.ModuleList(
                    [
                        block_klass(dim_in, dim_out, time_emb_dim=time_dim),
                        block_klass(dim_out, dim_out, time_emb_dim=time_dim),
                        Residual(PreNorm(dim_out, LinearAttention(dim_out)))
                        if stage_attention
                        else nn.Identity(),
                        Downsample(dim_out) if not is_last else nn.Identity(),
                    ]
                )
            )

        mid_dim = dims[-1]
        self.mid_block1 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)
        self.mid_attn = Residual(PreNorm(mid_dim, Attention(mid_dim)))
        self.mid_block2 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)

        for ind, (dim_in, dim_out) in enumerate(reversed(in_out[1:])):
            is_last = ind >= (num_resolutions - 1)

            self.ups.append(
                nn.ModuleList(
                    [
                        block_klass(dim_out * 2, dim_in, time_emb_dim=time_dim),
                        block_klass(dim_in, dim_in, time_emb_dim=time_dim),
                        Residual(PreNorm(dim_in, LinearAttention(dim_in)))
                        if stage_attention
                        else nn.Identity(),
                        Upsample(dim_in) if not is_last else nn.Identity(),
                    ]
                )
            )

        out_dim = default(out_dim, channels)
        self.final_conv = nn.Sequential(block_klass(dim, dim), nn.Conv2d(dim, out_dim, 1))

    def forward(self, x, time, x_self_cond=None):
        if self.self_condition:
            x_self_cond = default(x_self_cond, lambda: torch.zeros_like(x))
            x = torch.cat((x_self_cond, x), dim=1)
        x = self.init_conv(x)

        t = self.time_mlp(time) if exists(self.time_mlp) else None

        h = []

        for block1, block2, attn, downsample in self.downs:
            x = block1(x, t)
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
            x = block2(x, t)
            x = attn(x)
            x = upsample(x)

        return self.final_conv(x)


# --- the blog's diffusion (linear schedule, Huber loss, Algorithm 2) ----------------------------


class Diffusion:
    def __init__(self, timesteps):
        self.timesteps = timesteps
        self.betas = torch.linspace(0.0001, 0.02, timesteps)
        alphas = 1.0 - self.betas
        alphas_cumprod = torch.cumprod(alphas, axis=0)
        alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
        self.sqrt_recip_alphas = torch.sqrt(1.0 / alphas)
        self.sqrt_alphas_cumprod = torch.sqrt(alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - alphas_cumprod)
        self.posterior_variance = (
            self.betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        )

    @staticmethod
    def extract(a, t, x_shape):
        batch_size = t.shape[0]
        out = a.gather(-1, t.cpu())
        return out.reshape(batch_size, *((1,) * (len(x_shape) - 1))).to(t.device)

    def q_sample(self, x_start, t, noise):
        return (
            self.extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
            + self.extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise
        )

    def p_losses(self, model, x_start, t):
        noise = torch.randn_like(x_start)
        x_noisy = self.q_sample(x_start, t, noise)
        return F.smooth_l1_loss(noise, model(x_noisy, t))

    @torch.no_grad()
    def p_sample(self, model, x, t, t_index):
        betas_t = self.extract(self.betas, t, x.shape)
        s1m = self.extract(self.sqrt_one_minus_alphas_cumprod, t, x.shape)
        sra = self.extract(self.sqrt_recip_alphas, t, x.shape)
        model_mean = sra * (x - betas_t * model(x, t) / s1m)
        if t_index == 0:
            return model_mean
        pv = self.extract(self.posterior_variance, t, x.shape)
        return model_mean + torch.sqrt(pv) * torch.randn_like(x)

    @torch.no_grad()
    def sample(self, model, shape):
        # On the model's device, as in the blog's p_sample_loop.
        device = next(model.parameters()).device
        b = shape[0]
        img = torch.randn(shape, device=device)
        imgs = []
        for i in reversed(range(0, self.timesteps)):
            img = self.p_sample(
                model, img, torch.full((b,), i, device=device, dtype=torch.long), i
            )
            imgs.append(img.cpu().numpy())
        return imgs


# --- benchmark -----------------------------------------------------------------------------------


def make_model(config):
    if config == "blog":
        return Unet(dim=28, channels=1, dim_mults=(1, 2, 4)), 28
    if config == "resnet":
        return (
            Unet(dim=28, channels=1, dim_mults=(1, 2, 4), use_convnext=False, resnet_block_groups=4),
            28,
        )
    if config == "tiny":
        return Unet(dim=8, channels=1, dim_mults=(1, 2), resnet_block_groups=2), 8
    if config == "current":
        # Today's blog UNet (seed 001), from the parity fixtures' script (the seed's code).
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from make_current_fixtures import Unet001

        return Unet001(dim=28, channels=1, dim_mults=(1, 2, 4)), 28
    if config == "lucidrains":
        # The package itself (scripts/compare.sh installs it for this config).
        try:
            from denoising_diffusion_pytorch import Unet as LucidrainsUnet
        except ImportError as e:
            raise SystemExit(f"--config lucidrains needs denoising-diffusion-pytorch ({e})")
        return LucidrainsUnet(dim=28, channels=1, dim_mults=(1, 2, 4)), 28
    raise SystemExit(
        f"unknown config {config!r} (expected blog, resnet, current, lucidrains or tiny)"
    )


def time_runs(fn, warmup, repeats, sync=lambda: None):
    """Runs `fn` `warmup` times untimed, then `repeats` times timed; `sync` waits for queued
    GPU work, so a run's time covers its kernels and not only their launch."""
    for _ in range(warmup):
        fn()
    sync()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        runs.append(time.perf_counter() - t0)
    return runs


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="blog")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--forward-batch", type=int, default=64)
    ap.add_argument("--sample-batch", type=int, default=16)
    ap.add_argument("--sample-steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--only",
        default="train,forward,sample",
        help="which workloads to run, comma-separated (as `ddpm-lab bench --only`): train,"
        " forward, sample; the others are reported as null",
    )
    ap.add_argument("--sample-repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    ap.add_argument(
        "--tf32",
        choices=["off", "on", "default"],
        default="off",
        help="CUDA: TF32 for matmuls and cuDNN convolutions: off (strict float32, as ddpm-lab's"
        " default), on (both, as `ddpm-lab bench --tf32`), or PyTorch's own default (cuDNN on,"
        " matmul off)",
    )
    a = ap.parse_args()
    only = {w.strip() for w in a.only.split(",") if w.strip()}
    unknown = only - {"train", "forward", "sample"}
    if unknown or not only:
        raise SystemExit(f"--only {a.only}: expected some of train, forward, sample")

    device = torch.device(a.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {a.device}: torch sees no CUDA device")

        def sync():
            torch.cuda.synchronize(device)

        if a.tf32 != "default":
            torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "on"
            torch.backends.cudnn.allow_tf32 = a.tf32 == "on"

    else:

        def sync():
            pass

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model, size = make_model(a.config)
    model = model.to(device)
    diff = Diffusion(a.sample_steps)
    params = sum(p.numel() for p in model.parameters())

    # Training step: forward + backward + Adam (lr 1e-3), as in the blog's loop.
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x0 = torch.tanh(torch.randn(a.batch_size, 1, size, size)).to(device)

    def train_step():
        opt.zero_grad()
        t = torch.randint(0, a.sample_steps, (a.batch_size,)).long().to(device)
        loss = diff.p_losses(model, x0, t)
        loss.backward()
        opt.step()
        loss.item()

    model.train()
    train_runs = time_runs(train_step, a.warmup, a.repeats, sync) if "train" in only else []

    model.eval()
    xf = torch.tanh(torch.randn(a.forward_batch, 1, size, size)).to(device)
    tf = torch.randint(0, a.sample_steps, (a.forward_batch,)).long().to(device)

    def forward():
        with torch.no_grad():
            model(xf, tf)

    forward_runs = time_runs(forward, a.warmup, a.repeats, sync) if "forward" in only else []

    sample_seconds = None
    if a.sample_repeats > 0 and "sample" in only:
        runs = time_runs(
            lambda: diff.sample(model, (a.sample_batch, 1, size, size)),
            0,
            a.sample_repeats,
            sync,
        )
        sample_seconds = statistics.median(runs)

    train = statistics.median(train_runs) if train_runs else None
    fwd = statistics.median(forward_runs) if forward_runs else None
    gpu = {}
    if device.type == "cuda":
        gpu = {
            "gpu": torch.cuda.get_device_name(device),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / (1024 * 1024),
        }
    print(
        json.dumps(
            {
                "impl": "pytorch",
                "torch": torch.__version__,
                "config": a.config,
                "device": str(device),
                "threads": torch.get_num_threads(),
                "params": params,
                "batch_size": a.batch_size,
                "train_step_seconds": train,
                "train_images_per_s": a.batch_size / train if train else None,
                "train_runs": train_runs,
                "forward_batch": a.forward_batch,
                "forward_seconds": fwd,
                "forward_images_per_s": a.forward_batch / fwd if fwd else None,
                "forward_runs": forward_runs,
                "sample_batch": a.sample_batch,
                "sample_steps": a.sample_steps,
                "sample_seconds": sample_seconds,
                "peak_rss_mb": peak_rss_mb(),
                "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
                **gpu,
            }
        )
    )


if __name__ == "__main__":
    main()
