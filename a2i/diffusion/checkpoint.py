"""Training checkpoints of the diffusion U-Net: written with a digest of their content, trusted only once it
matches.

A checkpoint damaged after it was written (a truncated copy, bytes overwritten in the DVC cache) may still load,
as torch.load checks no checksum: damaged EMA weights then give black images, a better Frechet distance and a
crash three stages later. Checked here, it stops the first stage that reads it, in one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from a2i.diffusion.unet import UNet
from a2i.io import content_digest, save_torch
from a2i.variants import checkpoint_epoch

DIGEST = "sha256"  # the key of the digest, over everything else in the checkpoint
WEIGHTS = ("model", "ema")
ARCHIVE = b"PK\x03\x04"  # torch.save writes a zip archive; a damaged checkpoint keeps its first bytes


def save_checkpoint(path: Path, state: dict) -> None:
    save_torch(path, {**state, DIGEST: content_digest(state)})


def load_checkpoint(path: Path) -> dict:
    """A checkpoint as saved, memory-mapped (reading the config of one costs nothing) and on the CPU (RNG states
    must be CPU tensors; load_state_dict moves weights to their module's device); not yet verified. A missing
    file or one of another kind is told apart from a damaged checkpoint, which `dvc checkout` can restore."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {'a directory' if path.is_dir() else 'no such file'}, not a checkpoint")
    with path.open("rb") as file:
        head = file.read(len(ARCHIVE))
    if head and head != ARCHIVE:  # empty: truncated to nothing, damaged
        raise ValueError(f"{path}: not a checkpoint (not a torch.save archive)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a damaged file can fail in any layer (zip, pickle, storage): report, don't crash
        raise ValueError(damaged(path, "unreadable (truncated or damaged)")) from None
    if not isinstance(state, dict) or not {"config", *WEIGHTS} <= state.keys():
        raise ValueError(f"{path}: not a diffusion training checkpoint of a2i (no config and weights)")
    return state


def verify_checkpoint(path: Path, state: dict) -> None:
    """ValueError unless `state` has the digest it was saved with and finite weights."""
    if DIGEST not in state:
        raise ValueError(damaged(path, "no content digest (written before a2i checked its checkpoints)"))
    if state[DIGEST] != content_digest({key: value for key, value in state.items() if key != DIGEST}):
        raise ValueError(damaged(path, "its content does not match the digest saved with it"))
    bad = [f"{part}.{name}" for part in WEIGHTS for name, tensor in state[part].items()
           if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise ValueError(damaged(path, f"non-finite weights in {', '.join(bad[:3])}"))


def read_checkpoint(path: Path) -> dict:
    """A verified checkpoint (see `load_checkpoint`)."""
    state = load_checkpoint(path)
    verify_checkpoint(path, state)
    return state


def damaged(path: Path, why: str) -> str:
    """The one-line error for a checkpoint that cannot be trusted, and how to get a good one back."""
    return f"{path}: {why}; run `dvc checkout {Path(path).parent}` or delete it and re-run `dvc repro`"


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the `epoch_EEE.pt` files in a run directory, oldest first."""
    found = ((checkpoint_epoch(path.name), path) for path in Path(run_dir).glob("epoch_*.pt"))
    return sorted((epoch, path) for epoch, path in found if epoch is not None)


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[UNet, dict]:
    """(EMA U-Net in eval mode, run config) from a verified training checkpoint (a2i.diffusion.checkpoint);
    ValueError naming the file when it is damaged or its weights do not fit the U-Net size its config names."""
    path = Path(path)
    state = read_checkpoint(path)
    config = state["config"]
    try:
        model = UNet(**config["model"])
    except (KeyError, TypeError, ValueError) as err:  # a config this version does not build (another a2i's)
        raise ValueError(f"{path}: not a diffusion checkpoint of a2i ({type(err).__name__}: {err})") from None
    try:
        model.load_state_dict(state["ema"])
    except RuntimeError:
        raise ValueError(f"{path}: weights do not fit the '{model.config['size']}' U-Net size "
                         f"named in its config (a checkpoint of another size?)") from None
    return model.to(device, memory_format=torch.channels_last).eval(), config
