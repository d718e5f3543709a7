"""The `sample_sr` stage (ours: the thesis' first item of future work, 6.2): the test images of the checkpoint
selected on validation, upsampled by the super-resolution model of `train_sr` (`a2i.diffusion.superres`) and by
bicubic interpolation, the baseline it has to beat (`evaluate_sr` scores both at the high resolution).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from a2i.config import SampleSRConfig
from a2i.data.dataset import PreparedDataset, load_embeddings
from a2i.devices import select_device, set_threads
from a2i.diffusion.superres import bicubic, check_embedding, load_superres, upscale
from a2i.evaluation.evaluate import discover_samples
from a2i.evaluation.selection import only_grid, select_best
from a2i.evaluation.stats import collect_metrics
from a2i.io import load_npz, save_npz, write_json
from a2i.variants import METRICS, PREPARED, SUPERRES_MODEL, UPSAMPLED_CHECKPOINT, Variant, samples_dir, upsampled_dir

log = logging.getLogger(__name__)

def selected_checkpoint(root: Path, grid: list[Variant], guidance: float) -> dict:
    """{variant, epoch, guidance} of the main-grid checkpoint selected on validation adherence (as the report)."""
    folder = root / METRICS / "evaluate"
    every = only_grid(collect_metrics(folder), "variant", [v.name for v in grid], folder)
    selected, _, _ = select_best(every[every["split"] == "test"], every[every["split"] == "val"], guidance)
    return {"variant": selected["variant"], "epoch": int(selected["epoch"]), "guidance": float(selected["guidance"])}


def _test_embeddings(root: Path, model, variant: str) -> np.ndarray | None:
    """The test embeddings of `variant`'s conditions, for a model trained with audio (on the same embedding);
    None for one without."""
    if not model.audio:
        return None
    embedding = Variant.parse(variant).embedding
    check_embedding(root / SUPERRES_MODEL, embedding, "the selected checkpoint", name=SUPERRES_MODEL)
    data = PreparedDataset(root / PREPARED, Variant.parse(variant).length, "test")
    return load_embeddings(root, embedding, "test", len(data))


def sample_sr(params: SampleSRConfig | dict, grid: list[Variant], root: Path = Path(".")) -> dict:
    """Upsample every seed's test images of the selected checkpoint with the model and with bicubic
    interpolation: `data/samples_sr/<method>/<sample_name>.npz` (images, labels, rows), written at the end."""
    config = SampleSRConfig.of(params)
    set_threads(config.threads)
    device = select_device()
    chosen = selected_checkpoint(root, grid, config.guidance)
    files = discover_samples(root / samples_dir(chosen["variant"])).get((chosen["epoch"], chosen["guidance"]))
    if not files:
        raise ValueError(f"{root / samples_dir(chosen['variant'])} has no samples of the selected checkpoint")
    model = load_superres(root / SUPERRES_MODEL, device)
    embeddings = _test_embeddings(root, model, chosen["variant"])
    outputs = []  # (file name, bicubic, diffusion, labels, rows): written once every seed is done
    for sample in files:
        images, labels, rows = load_npz(sample.path, "images", "labels", "rows")
        log.info("upsampling %s %s: %d images", chosen["variant"], sample.path.stem, len(images))
        upscaled = upscale(model, images, None if embeddings is None else embeddings[rows],
                           sampler=config.sampler, steps=config.steps, aug_level=config.aug_level,
                           seed=config.seed + sample.seed, batch_size=config.batch_size, device=device,
                           source=root / SUPERRES_MODEL)
        outputs.append((sample.path.name, bicubic(images, model.high_size), upscaled, labels, rows))
    for name, bicubic_images, diffusion_images, labels, rows in outputs:
        for method, images in (("bicubic", bicubic_images), ("diffusion", diffusion_images)):
            save_npz(root / upsampled_dir(method) / name, images=images, labels=labels, rows=rows)
    write_json(root / UPSAMPLED_CHECKPOINT, chosen)
    return chosen
