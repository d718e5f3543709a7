"""The model sizes of AudioCLIP's three towers, apart from the model so that a stage that builds only the
audio head (embed) does not import open_clip."""

from __future__ import annotations

from dataclasses import dataclass, field

from a2i.audioclip.esresnext import AudioHeadConfig

EMBED_DIM = 1024


@dataclass(frozen=True)
class AudioCLIPSize:
    """Sizes of the three towers; `embed_dim` is 1024 at every size (downstream stages rely on it)."""

    image_size: int
    vision_layers: tuple[int, int, int, int]
    vision_width: int
    text_width: int
    text_heads: int
    text_layers: int
    audio: AudioHeadConfig = field(default_factory=AudioHeadConfig)
    embed_dim: int = EMBED_DIM


SIZES: dict[str, AudioCLIPSize] = {
    # the released AudioCLIP: CLIP RN50 + ESResNeXt-50 32x4d fbsp head
    "thesis": AudioCLIPSize(image_size=224, vision_layers=(3, 4, 6, 3), vision_width=64,
                      text_width=512, text_heads=8, text_layers=12),
    # every code path of `thesis` (grouped convs, downsampling, five gates, the fbsp bank) at CPU cost:
    # 64x64 images, a 2-layer text transformer, a 1024-point fbsp bank at a coarse 4096-sample hop (timbre needs
    # the frequency resolution more than the time resolution) and a one-block-per-stage ResNeXt
    "tiny": AudioCLIPSize(image_size=64, vision_layers=(1, 1, 1, 1), vision_width=8,
                    text_width=64, text_heads=2, text_layers=2,
                    audio=AudioHeadConfig(n_fft=1024, win_length=896, hop_length=4096, stem_width=8,
                                          planes=(8, 16, 32, 64), layers=(1, 1, 1, 1),
                                          groups=4, width_per_group=16)),
}


def size_config(size: str) -> AudioCLIPSize:
    if size not in SIZES:
        raise ValueError(f"unknown AudioCLIP size {size!r}; expected one of {sorted(SIZES)}")
    return SIZES[size]
