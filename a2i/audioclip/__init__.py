"""AudioCLIP (CLIP RN50 + ESResNeXt-fbsp audio head): model, checkpoints, preprocessing."""

from importlib import import_module

# the shortest clip embedded: one Sub-URMP chunk (0.5 s), the dataset's unit of audio
MIN_SECONDS = 0.5

# Resolved on first use (PEP 562): importing a2i.audioclip.cli must not load torch and open_clip for `a2i --help`.
_EXPORTS = {
    "CheckpointError": "checkpoint", "create_model": "checkpoint", "load_pretrained": "checkpoint",
    "verify_checkpoint": "checkpoint", "SIZES": "sizes", "AudioCLIP": "model", "preprocess_images": "preprocess",
    "tokenize_labels": "preprocess", "validate_audio": "preprocess",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
