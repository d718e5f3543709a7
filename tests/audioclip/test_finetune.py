"""Fine-tuning (thesis 4.3.1): loss, sampling, query accuracy (5.2.1), optimiser groups and the stage."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from a2i.audioclip import AudioCLIP
from a2i.audioclip.embed import load_audio_encoder
from a2i.audioclip.finetune import (
    balanced_sampler, class_texts, contrastive_loss, finetune, image_query_sets, query_accuracy, run_finetune,
    setup_optimizer,
)
from a2i.config import FinetuneConfig
from a2i.data.dataset import PreparedDataset
from a2i.data.layout import INSTRUMENTS, SAMPLE_RATE

REPO = Path(__file__).resolve().parents[2]
TONES_HZ = (180.0, 1400.0, 5200.0, 600.0)  # one clearly different pitch per fixture class
COLOURS = ((220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 220, 40))
PARAMS = dict(model_size="tiny", checkpoint=None, allow_random_init=True, epochs=1, batch_size=8, lr=0.01,
              lr_gamma=0.96, momentum=0.9, weight_decay=5e-4, same_class_negatives=False, max_steps_per_epoch=3,
              bn_recalibration_batches=2, device="cpu", seed=0)


def make_prepared(root: Path, classes: int = 3, counts=(("train", 12), ("val", 3), ("test", 4)),
                  lengths=(1,)) -> Path:
    """A `data/prepared` folder: one tone per class in tracks.npy, one coloured frame per sample."""
    rng = np.random.default_rng(0)
    seconds = 6
    time = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
    tracks, images, frames = [], [], {}
    for label in range(classes):
        tone = np.sin(2 * np.pi * TONES_HZ[label] * time) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * time))
        tracks.append((tone * 12000 + rng.normal(0, 200, time.shape)).astype(np.int16))
    root.mkdir(parents=True, exist_ok=True)
    for length in lengths:
        for split, per_class in counts:
            rows = []
            for label in range(classes):
                for start in rng.integers(0, (seconds - length) * 10, per_class) * 4410:
                    image = np.full((64, 64, 3), COLOURS[label], np.uint8)
                    images.append(np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8))
                    rows.append({"performance": f"{INSTRUMENTS[label]}00", "instrument": INSTRUMENTS[label],
                                 "label": label, "start": label * seconds * SAMPLE_RATE + int(start),
                                 "image": len(images) - 1})
            frames[(length, split)] = pd.DataFrame(rows)
    np.save(root / "tracks.npy", np.concatenate(tracks))
    np.save(root / "images.npy", np.stack(images))
    for (length, split), frame in frames.items():
        frame.to_csv(root / f"index_{length}s_{split}.csv", index=False)
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared"))


def config(**overrides) -> FinetuneConfig:
    return FinetuneConfig.from_params({**PARAMS, **overrides})


# --- loss -----------------------------------------------------------------------------------------------------

def test_loss_is_the_clip_loss_when_classes_are_distinct_or_same_class_negatives_is_set():
    torch.manual_seed(0)
    audio, other = torch.randn(4, 16), torch.randn(4, 16)
    scale = torch.tensor(20.0)
    logits = scale * F.normalize(audio, dim=-1) @ F.normalize(other, dim=-1).T
    clip = F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.T, torch.arange(4))
    distinct = torch.tensor([0, 1, 2, 3])
    repeated = torch.tensor([0, 0, 1, 1])
    assert torch.allclose(contrastive_loss(audio, other, distinct, scale, False), clip)
    assert torch.allclose(contrastive_loss(audio, other, repeated, scale, True), clip)
    assert not torch.allclose(contrastive_loss(audio, other, repeated, scale, False), clip)


def test_masked_loss_ignores_same_class_pairs():
    torch.manual_seed(0)
    audio, other = torch.randn(3, 8), torch.randn(3, 8)
    labels = torch.tensor([5, 5, 2])
    scale = torch.tensor(10.0)
    logits = scale * F.normalize(audio, dim=-1) @ F.normalize(other, dim=-1).T
    # row/column i only competes against the samples of other classes
    keep = [[0, 2], [1, 2], [0, 1, 2]]
    expected = sum(-F.log_softmax(logits[i, keep[i]], 0)[keep[i].index(i)] for i in range(3)) / 3
    expected += sum(-F.log_softmax(logits[keep[i], i], 0)[keep[i].index(i)] for i in range(3)) / 3
    assert torch.allclose(contrastive_loss(audio, other, labels, scale, False), expected)
    # a batch of one class has no negatives left: nothing to learn
    assert float(contrastive_loss(audio, other, torch.tensor([1, 1, 1]), scale, False)) == 0.0


# --- sampling and queries ----------------------------------------------------------------------------------------

def test_balanced_sampler_equalises_classes_and_is_seeded():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    def draw(seed):
        return np.fromiter(balanced_sampler(labels, 30_000, torch.Generator().manual_seed(seed)), dtype=np.int64)

    draws = draw(3)
    shares = np.bincount(labels[draws], minlength=3) / len(draws)
    assert np.allclose(shares, 1 / 3, atol=0.02)
    again, other = draw(3), draw(4)
    assert np.array_equal(draws, again) and not np.array_equal(draws, other)


def test_image_query_sets_hold_the_true_image_and_one_image_of_each_other_class():
    labels = np.array([0, 0, 1, 2, 2, 2, 4])
    rows, target = image_query_sets(labels, seed=0)
    assert rows.shape == (7, 4)  # classes present: 0, 1, 2, 4
    assert np.array_equal(rows[np.arange(7), target], np.arange(7))
    assert np.array_equal(labels[rows], np.broadcast_to([0, 1, 2, 4], (7, 4)))
    assert np.array_equal(image_query_sets(labels, seed=0)[0], rows)


def test_query_accuracy_text_and_image():
    queries = np.eye(3, 6, dtype=np.float32)  # three class embeddings
    audio = np.array([[2, 0, 0, 0, 0, 0], [0, 1, 0.1, 0, 0, 0], [0.9, 0, 1, 0, 0, 0], [1, 0.1, 0, 0, 0, 0]],
                     np.float32)
    assert query_accuracy(audio, queries, np.array([0, 1, 2, 1]), None) == 0.75
    # image: each sample's own image equals its audio; the others are orthogonal to it
    images = np.eye(4, 6, dtype=np.float32)
    rows, target = image_query_sets(np.array([0, 1, 2, 3]), seed=0)
    assert query_accuracy(images, images, target, rows) == 1.0
    assert query_accuracy(-images, images, target, rows) == 0.0


# --- optimiser ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alignment", ["text", "frozen", "mutual"])
def test_optimizer_trains_the_audio_head_and_only_the_mutual_image_head(alignment):
    model = AudioCLIP("tiny")
    optimizer = setup_optimizer(model, alignment, config())
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert all(name.startswith(("audio.", "visual.", "logit_scale_a")) for name in trained)
    assert {name for name, _ in model.audio.named_parameters(prefix="audio")} <= trained
    assert {"logit_scale_ai", "logit_scale_at"} <= trained and "logit_scale" not in trained
    assert any(name.startswith("visual.") for name in trained) == (alignment == "mutual")
    assert not any(name.startswith(("transformer.", "token_embedding", "text_projection")) for name in trained)

    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert decay["nesterov"] and decay["momentum"] == 0.9 and decay["lr"] == 0.01
    ids = {id(p) for p in no_decay["params"]}
    assert {id(model.audio.fbsp.m), id(model.audio.fbsp.fb), id(model.logit_scale_at)} <= ids
    assert id(model.audio.conv1.weight) not in ids
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name,value", [("batch_size", 1), ("lr", 0.0), ("max_steps_per_epoch", 0), ("epochs", -1)])
def test_invalid_params_name_the_key(name, value):
    with pytest.raises(ValueError, match=f"finetune.{name}"):
        config(**{name: value})


def test_missing_param_names_the_key():
    with pytest.raises(ValueError, match="finetune.lr_gamma is missing"):
        FinetuneConfig.from_params({k: v for k, v in PARAMS.items() if k != "lr_gamma"})


# --- training ----------------------------------------------------------------------------------------------------

def test_text_alignment_learns_to_separate_the_classes(prepared):
    train, test = PreparedDataset(prepared, 1, "train"), PreparedDataset(prepared, 1, "test")
    torch.manual_seed(0)
    model = AudioCLIP("tiny")
    metrics = finetune(model, "text", train, test, config(epochs=3, max_steps_per_epoch=None, batch_size=6,
                                                          lr=0.003))
    # 13 class texts, chance 1/13. At lr 0.01 this batch-6 SGD learns on one thread and diverges on two (the
    # order of float sums decides); at 0.003 it learns on both (0.92-1.0 after epochs 2 and 3)
    assert metrics["query_acc_epoch0"] < 0.4
    assert min(metrics["query_acc_epoch2"], metrics["query_acc_epoch3"]) >= 0.9
    assert metrics["best_query_acc"] >= 0.9 and metrics["best_epoch"] in (2, 3)
    assert math.isfinite(metrics["final_loss"])


@pytest.mark.parametrize("alignment", ["frozen", "mutual"])
def test_image_alignments_train_the_audio_head_and_the_image_head_only_when_mutual(prepared, alignment):
    train, test = PreparedDataset(prepared, 1, "train"), PreparedDataset(prepared, 1, "test")
    torch.manual_seed(0)
    model = AudioCLIP("tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = finetune(model, alignment, train, test, config(max_steps_per_epoch=2))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("audio.") for k in changed)
    assert any(k.startswith("visual.") for k in changed) == (alignment == "mutual")
    assert not any(k.startswith(("transformer.", "token_embedding", "ln_final", "text_projection")) for k in changed)
    assert set(metrics) == {"query_acc_epoch0", "query_acc_epoch1", "best_query_acc", "best_epoch", "final_loss"}


def test_divergence_is_an_error_naming_the_lr(prepared, tmp_path):
    with pytest.raises(ValueError, match="diverged .* lower parameter 'finetune.lr'"):
        run_finetune("text-1s", {**PARAMS, "lr": 10}, prepared, model_path=tmp_path / "m.pt",
                     metrics_path=tmp_path / "m.json", live_dir=tmp_path / "live")
    assert sorted(tmp_path.iterdir()) == []  # no heads, metrics or curves, not even temporary files


def test_an_update_that_breaks_the_weights_after_the_last_loss_is_caught(prepared, tmp_path, monkeypatch):
    real_step = torch.optim.SGD.step

    def overflowing_step(self, *args, **kwargs):  # as a huge rate's last update: no later loss would show it
        result = real_step(self, *args, **kwargs)
        self.param_groups[0]["params"][0].data.fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", overflowing_step)
    with pytest.raises(ValueError, match=r"^fine-tuning diverged \(audio\.\S+ holds non-finite values\) at the end "
                                         r"of epoch 1: lower parameter 'finetune.lr' \(now 0.01\)$"):
        run_finetune("text-1s", {**PARAMS, "max_steps_per_epoch": 1}, prepared, model_path=tmp_path / "m.pt",
                     metrics_path=tmp_path / "m.json", live_dir=tmp_path / "live")
    assert sorted(tmp_path.iterdir()) == []


def test_a_run_whose_heads_cannot_be_published_leaves_the_last_runs_outputs(prepared, tmp_path, monkeypatch):
    paths = dict(model_path=tmp_path / "m.pt", metrics_path=tmp_path / "m.json", live_dir=tmp_path / "live")
    run_finetune("text-1s", {**PARAMS, "max_steps_per_epoch": 1}, prepared, **paths)
    before = {path: path.read_bytes() for path in sorted(tmp_path.rglob("*")) if path.is_file()}
    real_replace = os.replace

    def heads_fail(source, target):  # the heads' rename is the first of the three
        if Path(target) == paths["model_path"]:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", heads_fail)
    with pytest.raises(OSError, match="No space left"):
        run_finetune("text-1s", {**PARAMS, "max_steps_per_epoch": 1, "seed": 1}, prepared, **paths)
    assert {path: path.read_bytes() for path in sorted(tmp_path.rglob("*")) if path.is_file()} == before


def test_heads_are_not_published_without_their_metrics(prepared, tmp_path):
    (tmp_path / "blocker").write_text("a file where the metrics' folder should be")
    with pytest.raises(FileExistsError):
        run_finetune("text-1s", {**PARAMS, "max_steps_per_epoch": 1}, prepared, model_path=tmp_path / "out" / "m.pt",
                     metrics_path=tmp_path / "blocker" / "m.json", live_dir=tmp_path / "out" / "live")
    assert not (tmp_path / "out").exists() or sorted((tmp_path / "out").iterdir()) == []


def test_splits_that_cannot_train_or_be_queried_are_named_before_anything_is_written(prepared, tmp_path):
    paths = dict(model_path=tmp_path / "m.pt", metrics_path=tmp_path / "m.json", live_dir=tmp_path / "live")
    with pytest.raises(ValueError, match=r"index_1s_train.csv has \d+ samples, fewer than one batch of "
                                         r"finetune.batch_size=4096"):
        run_finetune("text-1s", {**PARAMS, "batch_size": 4096}, prepared, **paths)
    empty = tmp_path / "prepared"
    shutil.copytree(prepared, empty)
    (empty / "index_1s_test.csv").write_text((empty / "index_1s_test.csv").read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match=r"index_1s_test.csv has no samples"):
        run_finetune("frozen-1s", PARAMS, empty, **paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_run_finetune_writes_heads_metrics_and_curves_deterministically(prepared, tmp_path, caplog):
    def run(tag):
        paths = dict(model_path=tmp_path / tag / "m.pt", metrics_path=tmp_path / tag / "m.json",
                     live_dir=tmp_path / tag / "live")
        return run_finetune("mutual-1s", {**PARAMS, "epochs": 2, "max_steps_per_epoch": 2}, prepared, **paths)

    with caplog.at_level("WARNING"):
        metrics = run("a")
    assert "RANDOM AudioCLIP weights" in caplog.text
    assert metrics == run("b")
    saved = json.loads((tmp_path / "a" / "m.json").read_text())
    assert saved == metrics
    assert saved["alignment"] == "mutual" and saved["length_s"] == 1 and saved["pretrained"] is False
    assert {f"query_acc_epoch{e}" for e in range(3)} <= set(saved)
    curve = pd.read_csv(tmp_path / "a" / "live" / "plots" / "metrics" / "query_acc.tsv", sep="\t")
    assert list(curve["step"]) == [0, 1, 2]
    assert np.allclose(curve["query_acc"], [saved[f"query_acc_epoch{e}"] for e in range(3)])

    heads = torch.load(tmp_path / "a" / "m.pt", weights_only=True)
    assert (heads["size"], heads["alignment"], heads["length_s"]) == ("tiny", "mutual", 1)
    assert heads["pretrained"] is False
    assert heads["image"] is not None and "attnpool.c_proj.weight" in heads["image"]
    encoder = load_audio_encoder(tmp_path / "a" / "m.pt")
    assert not encoder.training
    with torch.inference_mode():
        assert encoder(torch.randn(2, 1, SAMPLE_RATE) * 1000).shape == (2, 1024)


def test_thesis_size_takes_a_finetuning_step(prepared):
    """The full-size towers (random init) go through one text-aligned step and one query evaluation."""
    torch.manual_seed(0)
    model = AudioCLIP("thesis")
    small = make_prepared(prepared.parent / "thesis", classes=2, counts=(("train", 1), ("test", 1)))
    train, test = PreparedDataset(small, 1, "train"), PreparedDataset(small, 1, "test")
    fc_before = model.audio.fc.weight.clone()
    text_before = model.text_projection.clone()
    metrics = finetune(model, "text", train, test, replace(config(), epochs=1, batch_size=2))
    assert math.isfinite(metrics["final_loss"]) and 0.0 <= metrics["query_acc_epoch1"] <= 1.0
    assert not torch.equal(model.audio.fc.weight, fc_before)
    assert torch.equal(model.text_projection, text_before)
    assert len(class_texts()) == 13 and "double bass" in class_texts()


# --- stage CLI ---------------------------------------------------------------------------------------------------

def test_stage_rejects_a_bad_embedding_with_one_line(tmp_path):
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"finetune": PARAMS}))
    result = subprocess.run([sys.executable, str(REPO / "stages" / "finetune.py"), "--embedding", "text-1s-pca"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: 'text-1s-pca' names a diffusion variant")
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()
