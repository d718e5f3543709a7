"""AudioCLIP (CLIP RN50 + ESResNeXt-fbsp audio head): model, checkpoints, preprocessing."""

from a2i.audioclip.checkpoint import CheckpointError, create_model, load_pretrained, verify_checkpoint
from a2i.audioclip.model import PROFILES, AudioCLIP
from a2i.audioclip.preprocess import preprocess_images, tokenize_labels, validate_audio

__all__ = [
    "PROFILES", "AudioCLIP", "CheckpointError", "create_model", "load_pretrained", "preprocess_images",
    "tokenize_labels", "validate_audio", "verify_checkpoint",
]
