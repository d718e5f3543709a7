"""Input checks and preprocessing for the three AudioCLIP towers."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from open_clip.tokenizer import _tokenizer as _clip_tokenizer
from open_clip.tokenizer import tokenize

from a2i.audioclip import MIN_SECONDS
from a2i.data.layout import SAMPLE_RATE

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONTEXT_LENGTH = 77
INT16_PEAK = 32768.0
MIN_SAMPLES = int(MIN_SECONDS * SAMPLE_RATE)


def validate_audio(x: object, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Check audio for the audio head; return it as float32. ValueError naming what was expected otherwise.

    Expected: a float tensor [batch, channels, samples] in the int16 value range (|x| <= 32768), finite,
    at 44100 Hz, at least 0.5 s long.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"audio sample rate is {sample_rate} Hz; expected {SAMPLE_RATE} Hz (resample first)")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"audio must be a torch.Tensor [batch, channels, samples], got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"audio dtype is {x.dtype}; expected a float tensor holding int16-range values "
                         "(use x.float() on int16 samples)")
    if x.dim() != 3:
        raise ValueError(f"audio shape is {tuple(x.shape)}; expected [batch, channels, samples]")
    if x.numel() == 0:
        raise ValueError(f"audio is empty (shape {tuple(x.shape)}); expected [batch, channels, samples] with "
                         f"at least {MIN_SAMPLES} samples")
    if x.shape[-1] < MIN_SAMPLES:
        raise ValueError(f"audio is {x.shape[-1] / SAMPLE_RATE:.3f} s ({x.shape[-1]} samples); expected at least "
                         f"{MIN_SECONDS} s ({MIN_SAMPLES} samples at {SAMPLE_RATE} Hz)")
    if not torch.isfinite(x).all():
        raise ValueError("audio contains NaN or Inf values; expected finite int16-range samples")
    peak = float(x.abs().max())
    if peak > INT16_PEAK:
        raise ValueError(f"audio peak is {peak:g}; expected the int16 value range [-32768, 32767]")
    if 0.0 < peak <= 1.0:
        log.warning("audio peak is %g: this looks like [-1, 1] float audio; the model expects int16-range "
                    "values (multiply by 32768)", peak)
    return x.float()


def preprocess_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [B, H, W, 3] RGB -> CLIP input float [B, 3, size, size].

    As CLIP's transform: bicubic resize of the shorter side to `size` (PIL's kernel, uint8 result), centre
    crop, scale to [0, 1], normalise with the CLIP mean/std.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3 or 0 in images.shape[1:3]:
        raise ValueError(f"images must be uint8 [batch, height, width, 3] (height, width > 0), got {images.dtype} "
                         f"{tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2)
    height, width = x.shape[-2:]
    if (height, width) != (size, size):
        # torchvision's Resize(size) truncates the longer side, its CenterCrop rounds the offsets
        resized = (size, int(size * width / height)) if height <= width else (int(size * height / width), size)
        # uint8 in and out: torch's antialiased uint8 bicubic follows PIL's (within 2 levels)
        x = F.interpolate(x, size=resized, mode="bicubic", antialias=True, align_corners=False)
        top, left = round((resized[0] - size) / 2), round((resized[1] - size) / 2)
        x = x[..., top : top + size, left : left + size]
    x = x.float()
    mean = torch.tensor(CLIP_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).reshape(1, 3, 1, 1)
    return ((x / 255.0 - mean) / std).contiguous()


def tokenize_labels(labels: list[str]) -> torch.Tensor:
    """Label texts -> CLIP token ids [n, 77], no prompt template (as AudioCLIP's `encode_text`)."""
    if isinstance(labels, str) or not labels or not all(isinstance(label, str) for label in labels):
        raise ValueError(f"labels must be a non-empty list of strings, got {labels!r:.80}")
    for label in labels:
        if len(_clip_tokenizer.encode(label)) + 2 > CONTEXT_LENGTH:
            raise ValueError(f"label {label!r:.60} is longer than CLIP's {CONTEXT_LENGTH}-token context")
    return tokenize(labels, context_length=CONTEXT_LENGTH)
