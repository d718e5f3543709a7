"""The conditional U-Net of thesis 3.3.2, built on the layout of Capelle's `UNet_conditional`.

Condition path: a 1024-d audio embedding is projected to 256-d, either by the thesis' encoding layer
(Linear, LeakyReLU, Dropout, LayerNorm) or by PCA fitted on the training embeddings (thesis 4.5). The
projection is added to a sinusoidal time embedding and that sum is added to the output of every down/up
block; the cross-attention blocks attend to the projected condition. The thesis network is what the
defaults build; each departure from it is a named switch (see `a2i.thesis` for why each exists):
- `output_skip`: eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) F(x_t, t, c) instead of eps = F. Same optimum
  E[eps | x_t]; F is then a v-style target, which spares a small network learning the identity eps ~ x_t at
  high noise (benchmarks/RESULTS.md, "How the default run reaches its targets");
- `context_tokens` > 1: the projected condition is expanded into several cross-attention tokens (with one
  key/value token softmax attention is a constant linear map of the condition);
- `standardize`: the encoding layer's input is centred and scaled with the training embeddings' statistics;
- `pca_scale`: the PCA projection is scaled to unit RMS (thesis 5.4 blames PCA's brightness swings on the
  missing normalisation, so the thesis profile keeps it raw);
- `encoding_norm` off: the encoding layer without Dropout and LayerNorm (the variant of thesis Figure 5.10).

All attention goes through `F.scaled_dot_product_attention` (flash/memory-efficient kernels), so no
[tokens x tokens] matrix is ever materialised; that is what makes the thesis network trainable on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from a2i.diffusion import EMB_DIM
from a2i.diffusion.schedule import Schedule

COND_DIM = 1024


@dataclass(frozen=True)
class UNetSize:
    """Network size. `attn_max_size`: attention blocks only at feature maps of at most this side."""

    widths: tuple[int, int, int, int]
    heads: int
    attn_max_size: int


SIZES = {
    # Capelle's widths with the two-DoubleConv bottleneck; attention after all six down/up blocks.
    "thesis": UNetSize(widths=(64, 128, 256, 256), heads=4, attn_max_size=64),
    # CPU demo: same code, narrow layers, attention only at 8x8 (at 16x16 too is slower per step:
    # benchmarks/RESULTS.md, "CPU training speed of the tiny profile").
    "tiny": UNetSize(widths=(8, 16, 32, 32), heads=2, attn_max_size=8),
}


def get_size(name: str) -> UNetSize:
    if name not in SIZES:
        raise ValueError(f"unknown U-Net size '{name}' (choose from {sorted(SIZES)})")
    return SIZES[name]


def timestep_embedding(t: torch.Tensor, dim: int = EMB_DIM) -> torch.Tensor:
    """Sinusoidal embedding of integer steps: [sin(t f), cos(t f)] concatenated, f = 10000^(-2i/dim)."""
    freqs = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, device=t.device, dtype=torch.float32) / dim)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class DoubleConv(nn.Module):
    """conv3x3 -> GroupNorm(1) -> GELU -> conv3x3 -> GroupNorm(1); residual variant returns GELU(x + f(x))."""

    def __init__(self, c_in: int, c_out: int, c_mid: int | None = None, residual: bool = False):
        super().__init__()
        c_mid = c_mid or c_out
        self.residual = residual
        self.net = nn.Sequential(
            nn.Conv2d(c_in, c_mid, 3, padding=1, bias=False),
            nn.GroupNorm(1, c_mid),
            nn.GELU(),
            nn.Conv2d(c_mid, c_out, 3, padding=1, bias=False),
            nn.GroupNorm(1, c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x + self.net(x)) if self.residual else self.net(x)


class EmbeddingInjection(nn.Module):
    """Adds SiLU -> Linear(emb) to every position of a feature map."""

    def __init__(self, c_out: int):
        super().__init__()
        self.proj = nn.Sequential(nn.SiLU(), nn.Linear(EMB_DIM, c_out))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return x + self.proj(emb)[:, :, None, None].to(x.dtype)


class Down(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.convs = nn.Sequential(nn.MaxPool2d(2), DoubleConv(c_in, c_in, residual=True), DoubleConv(c_in, c_out))
        self.inject = EmbeddingInjection(c_out)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.inject(self.convs(x), emb)


class Up(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.convs = nn.Sequential(DoubleConv(c_in, c_in, residual=True), DoubleConv(c_in, c_out, c_in // 2))
        self.inject = EmbeddingInjection(c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.inject(self.convs(torch.cat([skip, x], dim=1)), emb)


class Attention(nn.Module):
    """Multi-head attention of `x` tokens over `context` tokens (itself when None), via SDPA."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
        k, v = self.kv(x if context is None else context).view(b, -1, 2, self.heads, c // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2))
        return self.out(y.transpose(1, 2).reshape(b, n, c))


class AttentionBlock(nn.Module):
    """Self-attention, cross-attention to the condition tokens (`cross`), feed-forward; pre-norm residuals (LDM
    style). Without `cross` (a network with no condition tokens) it is self-attention and feed-forward only."""

    def __init__(self, dim: int, heads: int, cross: bool = True):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.norm_cross = nn.LayerNorm(dim) if cross else None
        self.norm_ff = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads, context_dim=EMB_DIM) if cross else None
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.self_attn(self.norm_self(tokens))
        if self.cross_attn is not None:
            tokens = tokens + self.cross_attn(self.norm_cross(tokens), context)
        tokens = tokens + self.ff(self.norm_ff(tokens))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class Standardize(nn.Module):
    """Centres conditions on the training embeddings' mean and divides by their RMS deviation per dimension.

    Raw AudioCLIP embeddings share one dominant direction, which the encoding layer would otherwise have to
    learn to cancel before the instrument shows; standardised, the same training of the tiny U-Net reaches
    several times the adherence (benchmarks/RESULTS.md, "Standardised conditions"). Buffers, not parameters:
    fitted once, never trained.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(COND_DIM))
        self.register_buffer("scale", torch.ones(()))

    @torch.no_grad()
    def fit(self, embeddings: torch.Tensor) -> None:
        x = embeddings.double()
        mean = x.mean(0)
        self.mean.copy_(mean.to(self.mean.dtype))
        self.scale.fill_(float((x - mean).pow(2).mean().sqrt().clamp_min(1e-12)))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return (cond - self.mean) / self.scale


class EncodingLayer(nn.Sequential):
    """Thesis 3.3.2 encoding layer: Linear(1024, 256), LeakyReLU, then (`norm`) Dropout and LayerNorm (5.4);
    `standardize` puts a fitted `Standardize` in front."""

    def __init__(self, dropout: float, standardize: bool, norm: bool):
        layers = [Standardize()] if standardize else []
        layers += [nn.Linear(COND_DIM, EMB_DIM), nn.LeakyReLU()]
        layers += [nn.Dropout(dropout), nn.LayerNorm(EMB_DIM)] if norm else []
        super().__init__(*layers)

    def fit(self, embeddings: torch.Tensor) -> None:
        if isinstance(self[0], Standardize):
            self[0].fit(embeddings)


AXIS_GRID = 2.0 ** -20  # PCA axes are rounded to this grid (their scale to 6 digits): see `portable_axes`


def portable_axes(vectors: torch.Tensor) -> torch.Tensor:
    """Unit eigenvectors (columns) as the same numbers on every CPU: rounded to AXIS_GRID, far below what moves a
    projection, and signed so that each column's largest entry is positive. MKL's eigensolvers differ between
    CPUs in the last bits, and a solver's sign is arbitrary; both would grow through training into other metrics
    (benchmarks/RESULTS.md, "2026-12-01, fourth session" and "eleventh session")."""
    rounded = torch.round(vectors / AXIS_GRID) * AXIS_GRID
    largest = rounded.abs().argmax(0)
    return rounded * torch.sign(rounded[largest, torch.arange(rounded.shape[1])])


class PCAProjection(nn.Module):
    """Fixed PCA onto `components` axes of the training embeddings (thesis 4.5); `scale`: divided by the RMS of
    the kept axes (one scale for all keeps their relative variance; whitening would blow the noise axes up).
    Buffers, not parameters: saved in the state dict, never trained.
    """

    def __init__(self, components: int, scale: bool):
        super().__init__()
        self.scale = scale
        self.register_buffer("mean", torch.zeros(COND_DIM))
        self.register_buffer("basis", torch.zeros(COND_DIM, components))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, embeddings: torch.Tensor) -> None:
        x = embeddings.double()
        mean = x.mean(0)
        cov = torch.cov((x - mean).T)
        variances, vectors = torch.linalg.eigh(cov)  # ascending
        keep = min(self.basis.shape[1], vectors.shape[1])
        order = torch.argsort(variances, descending=True)[:keep]
        rms = float(f"{variances[order].clamp_min(0).mean().sqrt().clamp_min(1e-12):.6g}") if self.scale else 1.0
        self.basis.zero_()
        self.basis[:, :keep] = (portable_axes(vectors[:, order]) / rms).to(self.basis.dtype)
        self.mean.copy_(mean.to(self.mean.dtype))
        self.fitted.fill_(True)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return (cond - self.mean) @ self.basis


class Levels(nn.Module):
    """The U-Net's three 2x down levels, bottleneck and three up levels, with attention blocks on the feature maps
    of side <= the size's `attn_max_size`; shared by the base U-Net and the super-resolution one."""

    def build_levels(self, c_in: int, spec: UNetSize, image_size: int, cross: bool = True) -> None:
        w0, w1, w2, w3 = spec.widths
        self.inc = DoubleConv(c_in, w0)
        self.downs = nn.ModuleList([Down(w0, w1), Down(w1, w2), Down(w2, w3)])
        self.bottleneck = nn.Sequential(DoubleConv(w3, w3), DoubleConv(w3, w3))
        self.ups = nn.ModuleList([Up(w3 + w2, w1), Up(w1 + w1, w0), Up(w0 + w0, w0)])
        self.outc = nn.Conv2d(w0, 3, 1)

        # Feature-map side after each block: downs S/2, S/4, S/8, ups S/4, S/2, S (64x64: 32/16/8, 16/32/64).
        def attention(dim: int, side: int) -> nn.Module:
            return AttentionBlock(dim, spec.heads, cross) if side <= spec.attn_max_size else None

        self.down_attn = nn.ModuleList([attention(c, image_size // f) for c, f in ((w1, 2), (w2, 4), (w3, 8))])
        self.up_attn = nn.ModuleList([attention(c, image_size // f) for c, f in ((w1, 4), (w0, 2), (w0, 1))])

    def levels(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """The network's raw output F for input `x`, embedding `emb` added in every block, attention `context`."""
        skips = [self.inc(x)]
        h = skips[0]
        for down, attn in zip(self.downs, self.down_attn):
            h = down(h, emb)
            h = attn(h, context) if attn is not None else h
            skips.append(h)
        h = self.bottleneck(skips.pop())
        for up, attn in zip(self.ups, self.up_attn):
            h = up(h, skips.pop(), emb)
            h = attn(h, context) if attn is not None else h
        return self.outc(h)

    def noise(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The predicted noise from the raw output: F itself, or with `output_skip` sqrt(1 - abar) x + sqrt(abar) F."""
        if not self.output_skip:
            return out
        abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (1 - abar).sqrt() * x + abar.sqrt() * out


class UNet(Levels):
    """`unet(x [B,3,S,S], t [B] int, cond [B,1024])` -> predicted noise [B,3,S,S], S = `image_size` (64 in the
    thesis; a multiple of 8).

    `cond` all zeros is the unconditional (classifier-free guidance) input, in training and sampling alike.
    """

    def __init__(self, size: str = "thesis", projection: str = "fc", dropout: float = 0.1,
                 pca_components: int = EMB_DIM, schedule: dict | None = None, image_size: int = 64,
                 output_skip: bool = False, context_tokens: int = 1, standardize: bool = False,
                 pca_scale: bool = False, encoding_norm: bool = True):
        super().__init__()
        if image_size < 8 or image_size % 8:
            raise ValueError(f"image_size (the prepared images' side, prepare.image_size) must be a positive multiple "
                             f"of 8 for the three 2x poolings, got {image_size}")
        if projection not in ("fc", "pca"):
            raise ValueError(f"projection must be 'fc' or 'pca', got '{projection}'")
        if projection == "pca" and pca_components != EMB_DIM:
            raise ValueError(f"pca_components must be {EMB_DIM} (the time-embedding width), got {pca_components}")
        if context_tokens < 1:
            raise ValueError(f"context_tokens must be >= 1, got {context_tokens}")
        schedule = Schedule(**(schedule or {}))
        self.config = {"size": size, "projection": projection, "dropout": dropout,
                       "pca_components": pca_components, "schedule": schedule.as_dict(), "image_size": image_size,
                       "output_skip": output_skip, "context_tokens": context_tokens, "standardize": standardize,
                       "pca_scale": pca_scale, "encoding_norm": encoding_norm}
        self.schedule = schedule  # the samplers read it from here: a model cannot be sampled with another one
        self.register_buffer("alphas_cumprod", schedule.alphas_cumprod())
        self.output_skip, self.context_tokens = output_skip, context_tokens
        self.project = (EncodingLayer(dropout, standardize, encoding_norm) if projection == "fc"
                        else PCAProjection(pca_components, pca_scale))
        # The thesis cross-attends to the projected condition itself (one token); more tokens need a learned map.
        self.to_context = nn.Linear(EMB_DIM, context_tokens * EMB_DIM) if context_tokens > 1 else nn.Identity()
        self.build_levels(3, get_size(size), image_size)

    @property
    def image_size(self) -> int:
        return self.config["image_size"]

    def fit_condition(self, embeddings: torch.Tensor) -> None:
        """Fit the condition projection's statistics (standardisation, or the PCA basis) on the training
        embeddings; once, before training."""
        self.project.fit(embeddings)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = self.project(cond.float())
        emb = timestep_embedding(t) + c
        context = self.to_context(c).view(c.shape[0], self.context_tokens, EMB_DIM)
        return self.noise(self.levels(x, emb, context), x, t)
