"""Loading and checking the released AudioCLIP checkpoints.

Files are read with `torch.load(weights_only=True)` (a pickle that needs code execution is refused) and
loaded with `strict=True` against the thesis model. The sha256 is compared with the known release files.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from a2i.audioclip.model import AudioCLIP
from a2i.io import sha256_file

log = logging.getLogger(__name__)

# github.com/AndreyGuzhov/AudioCLIP release v0.1
AUDIOCLIP_SHA256 = {
    "2441d35b353352c8b1bbfb8f7c687f46314c3d2909e940eaf763b8c17f632c44": "AudioCLIP-Full-Training.pt",
    "1921885b6c3b5de0619f2ef4a9700ecbade758a398b34eb064230c30baef0c75": "AudioCLIP-Partial-Training.pt",
}
# other files of the same releases that people mistake for an AudioCLIP checkpoint
OTHER_SHA256 = {
    "124e6d59d54c0837c456c953b3147adf438a21570d5c5b01ad83f6ad3e78d15e": "CLIP.pt",
    "acfcc6b0a0f07025cc660ed6dcf9b5a05fbd7c8ebf65edaa0a81d88a92ff6834": "ESRNXFBSP.pt",
    "502a5dcde1771cf6f3c636780a428575322f842ceb2efac5ed72b0f68b858afe": "ESResNeXtFBSP_AudioSet.pt",
}


# torch.save writes a zip archive or (legacy format) a protocol-2 pickle that starts with torch's magic number
TORCH_HEADERS = (b"PK\x03\x04", pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)[:-1])  # [:-1]: no STOP


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded into AudioCLIP; the message says what is wrong."""


def module_entries(module: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """key -> (shape, dtype) of `module`'s state dict: what `check_state_dict` checks a file against."""
    return {key: (tuple(value.shape), value.dtype) for key, value in module.state_dict().items()}


def expected_entries() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """`module_entries` of the thesis AudioCLIP (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        return module_entries(AudioCLIP("thesis"))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """torch.load a plain state dict safely; CheckpointError says why a file is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not _starts_with_any(path, TORCH_HEADERS):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither torch.save's zip archive nor its legacy "
                              "pickle): is it the right file?")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as error:  # its end record is whole, its directory is not
            raise CheckpointError(f"{path}: {_load_failure(error)}") from None
        if any("/code/" in name or name.endswith("constants.pkl") for name in names):
            raise CheckpointError(f"{path}: a TorchScript archive (like OpenAI's RN50.pt), not an AudioCLIP "
                                  "state dict")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file can fail in any layer (zip, pickle, storage): report, don't crash
        raise CheckpointError(f"{path}: {_load_failure(error)}") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    if obj and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        nested = sorted(k for k, v in obj.items() if isinstance(v, Mapping))
        hint = f" (nested dicts under {nested[:4]}; a training checkpoint?)" if nested else ""
        raise CheckpointError(f"{path}: not a plain state dict of tensors{hint}")
    return dict(obj)


def _starts_with_any(path: Path, headers: tuple[bytes, ...]) -> bool:
    with open(path, "rb") as f:
        head = f.read(max(map(len, headers)))
    return head.startswith(headers)


def _load_failure(error: Exception) -> str:
    """One line saying why torch.load(weights_only=True) failed, in our words: torch wraps the unpickler's reason
    (the exception's context) in advice to turn the weights-only check off, which would run the file's code."""
    if isinstance(error, pickle.UnpicklingError) and error.__context__ is not None:
        error = error.__context__
    text = str(error).strip()
    code = re.search(r"GLOBAL (\S+) (?:was not an allowed global|whose module)", text)
    if code:
        return (f"refused: the pickle needs code execution to load (it calls {code[1]}); only plain tensor state "
                "dicts are read: get the checkpoint from its official release")
    first_sentence = text.splitlines()[0].split(". ")[0] if text else ""
    return f"unreadable (truncated or not a torch file): {type(error).__name__}: {first_sentence}"


def _identify(keys: set[str], expected: set[str]) -> str | None:
    """Name a well-known wrong file from its keys."""
    audio = {k for k in expected if k.startswith("audio.")}
    if not audio:  # not the AudioCLIP manifest (an audio head alone): nothing to name
        return None
    clip = expected - audio - {"logit_scale_ai", "logit_scale_at"}
    if keys == clip:
        return "this is CLIP.pt (the CLIP RN50 image and text towers), not an AudioCLIP checkpoint"
    if keys and keys == {k.removeprefix("audio.") for k in audio}:
        return ("this is ESRNXFBSP.pt / an ESResNeXt-fbsp audio head alone (keys without 'audio.'), "
                "not an AudioCLIP checkpoint")
    return None


def check_state_dict(state_dict: Mapping[str, torch.Tensor], expected=None) -> list[str]:
    """Problems of `state_dict` against the AudioCLIP manifest (empty list = it loads with strict=True)."""
    expected = expected_entries() if expected is None else expected
    odd = [repr(key) for key in state_dict if not isinstance(key, str)]
    keys = {key for key in state_dict if isinstance(key, str)}
    identified = _identify(keys, set(expected))
    problems = [identified] if identified else []
    if odd:
        problems.append(f"{len(odd)} keys that are not names: {_preview(odd)}")
    missing = sorted(set(expected) - keys)
    unexpected = sorted(keys - set(expected))
    if missing:
        problems.append(f"{len(missing)} missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_preview(unexpected)}")
    not_finite = []
    for key in sorted(keys & set(expected)):
        shape, dtype = expected[key]
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != shape:
            problems.append(f"shape mismatch for {key}: file {tuple(value.shape)}, expected {shape}")
        elif value.dtype != dtype:
            problems.append(f"dtype mismatch for {key}: file {value.dtype}, expected {dtype}")
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            not_finite.append(key)
    if not_finite:  # loaded, they would turn every embedding into NaN
        problems.append(f"{len(not_finite)} tensors hold NaN or infinite values: {_preview(not_finite)}")
    return problems


def _preview(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")


def known_name(sha256: str) -> str | None:
    return AUDIOCLIP_SHA256.get(sha256)


def verify_checkpoint(path: str | Path) -> dict:
    """Check a file against the AudioCLIP manifest without a model. Returns {path, sha256, known, problems}."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    sha256 = sha256_file(path)
    other = OTHER_SHA256.get(sha256)
    if other:
        return {"path": str(path), "sha256": sha256, "known": None,
                "problems": [f"this is {other} (by its sha256), not an AudioCLIP checkpoint"]}
    state_dict = read_state_dict(path)
    return {"path": str(path), "sha256": sha256, "known": known_name(sha256), "problems": check_state_dict(state_dict)}


def load_pretrained(model: torch.nn.Module, path: str | Path) -> dict:
    """Load a released AudioCLIP checkpoint into a thesis-size `AudioCLIP` (strict).

    Returns {"path", "sha256", "known"}: `known` is the release file name when the sha256 matches the
    Partial or Full training checkpoint, else None (with a logged warning naming the file).
    """
    if getattr(model, "size", None) != "thesis":
        raise CheckpointError(f"{path}: released weights only fit the 'thesis' size, the model is "
                              f"{getattr(model, 'size', None)!r}")
    path = Path(path)
    state_dict = read_state_dict(path)
    problems = check_state_dict(state_dict, module_entries(model))
    if problems:
        raise CheckpointError(f"{path}: not loadable into AudioCLIP: " + "; ".join(problems[:4]))
    model.load_state_dict(state_dict, strict=True)
    sha256 = sha256_file(path)
    known = known_name(sha256)
    if known is None:
        log.warning("%s: sha256 %s is neither AudioCLIP-Partial-Training.pt nor AudioCLIP-Full-Training.pt "
                    "(loaded anyway: the keys and shapes fit)", path, sha256)
    else:
        log.info("loaded %s (%s)", path, known)
    return {"path": str(path), "sha256": sha256, "known": known}


def create_model(size: str, checkpoint: str | Path | None) -> tuple[AudioCLIP, dict]:
    """AudioCLIP of `size`, with released weights when `checkpoint` is a path.

    Returns (model, info); info has `pretrained` (bool) and, when loaded, `checkpoint_sha256` and
    `checkpoint_known` (release file name or None). A null checkpoint logs a warning: random weights.
    """
    model = AudioCLIP(size)
    if checkpoint is None:
        log.warning("audioclip checkpoint is null: using RANDOM AudioCLIP weights (size %s)", size)
        return model, {"pretrained": False}
    loaded = load_pretrained(model, checkpoint)
    return model, {"pretrained": True, "checkpoint_sha256": loaded["sha256"], "checkpoint_known": loaded["known"]}
