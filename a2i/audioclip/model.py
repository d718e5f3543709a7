"""AudioCLIP: CLIP RN50 image and text towers (open_clip) plus the ESResNeXt-fbsp audio head.

Parameter names, shapes and dtypes equal the released AudioCLIP checkpoints (Partial / Full training), so
they load with `strict=True`. The `tiny` size is the same code with reduced widths and depths for CPU runs.
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from torch import nn

from a2i.audioclip.esresnext import ESResNeXtFBSP
from a2i.audioclip.preprocess import CONTEXT_LENGTH, tokenize_labels, validate_audio
from a2i.audioclip.sizes import size_config
from a2i.data.layout import SAMPLE_RATE

VOCAB_SIZE = 49408
LOGIT_SCALE_MAX = 100.0


class AudioCLIP(CLIP):
    """Tri-modal CLIP. `encode_audio`, `encode_image` and `encode_text` return unnormalised embeddings.

    Submodules: `audio` (ESResNeXt-fbsp head; `audio.loss_ttf()` is its filter-norm regulariser), `visual`
    (ModifiedResNet), the text tower as open_clip names it (`transformer`, `token_embedding`,
    `positional_embedding`, `ln_final`, `text_projection`) and the logit scales `logit_scale` (image-text),
    `logit_scale_ai` (audio-image) and `logit_scale_at` (audio-text), all in log space.
    Random init downloads nothing; load released weights with `a2i.audioclip.load_pretrained`.
    """

    def __init__(self, size: str = "thesis"):
        config = size_config(size)
        vision = CLIPVisionCfg(layers=config.vision_layers, width=config.vision_width, image_size=config.image_size,
                               patch_size=None)
        text = CLIPTextCfg(context_length=CONTEXT_LENGTH, vocab_size=VOCAB_SIZE, width=config.text_width,
                           heads=config.text_heads, layers=config.text_layers)
        # quick_gelu: the OpenAI RN50 weights were trained with QuickGELU (nn.GELU moves text by 1e-2);
        # logit_scale starts at 1.0 as in the reference's CLIP copy
        super().__init__(config.embed_dim, vision, text, quick_gelu=True, init_logit_scale=1.0)
        self.size = size
        self.image_size = config.image_size
        self.audio = ESResNeXtFBSP(config.audio)
        self.logit_scale_ai = nn.Parameter(torch.tensor(math.log(100.0)))
        self.logit_scale_at = nn.Parameter(torch.tensor(math.log(100.0)))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def encode_audio(self, audio: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """float [B, C, T] int16-range audio at 44.1 kHz -> [B, 1024]; channels are summed after pooling."""
        return self.audio(validate_audio(audio, sample_rate).to(self.device))

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """CLIP-normalised [B, 3, image_size, image_size] (see `preprocess_images`) -> [B, 1024]."""
        if (image.dim() != 4 or tuple(image.shape[1:]) != (3, self.image_size, self.image_size)
                or not image.is_floating_point()):
            raise ValueError(f"image batch is {image.dtype} {tuple(image.shape)}; expected float [batch, 3, "
                             f"{self.image_size}, {self.image_size}] (use preprocess_images)")
        if not torch.isfinite(image).all():
            raise ValueError("image batch holds non-finite values")
        return super().encode_image(image.to(self.device), normalize=normalize)

    def encode_text(self, labels: list[str], normalize: bool = False) -> torch.Tensor:
        """Label texts (no prompt template) -> [n, 1024]."""
        return super().encode_text(tokenize_labels(labels).to(self.device), normalize=normalize)

    def logit_scales(self) -> dict[str, torch.Tensor]:
        """exp of the three log scales, clamped to [1, 100] as the reference uses them."""
        names = {"audio_image": self.logit_scale_ai, "audio_text": self.logit_scale_at, "image_text": self.logit_scale}
        return {name: value.exp().clamp(1.0, LOGIT_SCALE_MAX) for name, value in names.items()}

    def forward(self, audio: torch.Tensor | None = None, image: torch.Tensor | None = None,
                text: list[str] | None = None) -> dict[str, torch.Tensor]:
        """L2-normalised features of the given modalities and the scaled cosine logits of each present pair.

        Keys: `audio`, `image`, `text` (features) and `audio_image`, `audio_text`, `image_text` ([rows of the
        first, rows of the second] logits).
        """
        out: dict[str, torch.Tensor] = {}
        if audio is not None:
            out["audio"] = F.normalize(self.encode_audio(audio), dim=-1)
        if image is not None:
            out["image"] = F.normalize(self.encode_image(image), dim=-1)
        if text is not None:
            out["text"] = F.normalize(self.encode_text(text), dim=-1)
        for pair, scale in self.logit_scales().items():
            first, second = pair.split("_")
            if first in out and second in out:
                out[pair] = scale * out[first] @ out[second].T
        return out
