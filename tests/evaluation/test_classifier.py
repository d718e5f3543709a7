import json

import numpy as np
import pandas as pd
import pytest
import torch

from a2i.data.layout import INSTRUMENTS
from a2i.evaluation import classifier

from .helpers import make_prepared, real_frames


def test_real_split_uses_the_smallest_length_and_distinct_frames(prepared):
    train = classifier.real_split(prepared, "train")
    index = pd.read_csv(prepared / "index_1s_train.csv")
    assert train.length_s == 1
    assert len(index) == 2 * len(train.labels)  # every frame is used by two samples
    assert train.rows.tolist() == sorted(index["image"].unique())
    assert train.images.shape == (len(train.rows), 64, 64, 3) and train.images.dtype == np.uint8
    assert (train.images == np.load(prepared / "images.npy")[train.rows]).all()
    assert train.labels.tolist() == index.drop_duplicates("image")["label"].tolist()


def test_real_split_errors(tmp_path):
    with pytest.raises(ValueError, match="no index_<L>s_<split>.csv"):
        classifier.real_split(tmp_path, "train")
    root = make_prepared(tmp_path / "p", {"train": 1, "val": 1, "test": 1})
    index = pd.read_csv(root / "index_1s_test.csv")
    index.loc[0, "image"] = 10_000
    index.to_csv(root / "index_1s_test.csv", index=False)
    with pytest.raises(ValueError, match="index_1s_test.csv: image rows outside images.npy"):
        classifier.real_split(root, "test")


def test_classify_reaches_min_accuracy_and_saves_a_frozen_model(prepared, trained):
    path, metrics = trained
    assert metrics["test_accuracy"] >= 0.99
    assert metrics["n_train"] == 12 * len(INSTRUMENTS) and metrics["length_s"] == 1
    assert json.loads(path.with_name("classifier.json").read_text()) == metrics
    model = classifier.load_classifier(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    test = classifier.real_split(prepared, "test")
    labels, features = classifier.predict(model, test.images)
    assert (labels == test.labels).mean() == pytest.approx(metrics["test_accuracy"])
    assert features.shape == (len(test.labels), classifier.WIDTHS[-1]) and features.dtype == np.float64


def test_classify_fails_loudly_below_min_accuracy(prepared, tmp_path):
    with pytest.raises(ValueError, match=r"test accuracy .* is below classify.min_accuracy 1.01"):
        classifier.classify(prepared, tmp_path / "c.pt", tmp_path / "c.json", epochs=1, batch_size=64, lr=0.01,
                            min_accuracy=1.01, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_classify_refuses_a_frame_in_two_splits(tmp_path):
    root = make_prepared(tmp_path / "p", {"train": 1, "val": 1, "test": 1})
    val = pd.read_csv(root / "index_1s_val.csv")
    test = pd.read_csv(root / "index_1s_test.csv")
    test.loc[0, "image"] = val.loc[0, "image"]
    test.to_csv(root / "index_1s_test.csv", index=False)
    with pytest.raises(ValueError, match="in both the val and test splits"):
        classifier.classify(root, tmp_path / "c.pt", tmp_path / "c.json", epochs=1, batch_size=8, lr=0.01,
                            min_accuracy=0.0, seed=0)


def test_random_shift_translates_whole_images():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(classifier.random_shift(x, generator, max_shift=0), x)
    shifted = classifier.random_shift(x, generator, max_shift=2)
    assert shifted.shape == x.shape
    # Inside the image, a shift keeps neighbouring pixels neighbours.
    assert torch.equal(shifted[:, :, 2:6, 3] - shifted[:, :, 2:6, 2], torch.ones(2, 3, 4))


def test_classifier_runs_on_real_suburmp_frames(trained):
    images, labels = real_frames()
    model = classifier.load_classifier(trained[0])
    predicted, features = classifier.predict(model, images)
    assert predicted.shape == labels.shape and set(predicted) <= set(range(len(INSTRUMENTS)))
    assert features.shape == (len(images), classifier.WIDTHS[-1]) and np.isfinite(features).all()


def test_classifier_input_is_checked():
    with pytest.raises(ValueError, match=r"uint8 \[n, 64, 64, 3\]"):
        classifier.to_input(np.zeros((2, 32, 32, 3), np.uint8), 64)


def test_pixel_noise_std_is_drawn_per_image_up_to_the_maximum():
    x = torch.zeros(400, 3, 64, 64)
    noisy = classifier.add_pixel_noise(x, 0.3, torch.Generator().manual_seed(0))
    stds = noisy.flatten(1).std(dim=1)
    assert stds.max() <= 0.31 and stds.min() < 0.03  # one std per image, uniform in [0, 0.3]
    assert abs(stds.mean().item() - 0.15) < 0.02
    assert torch.equal(classifier.add_pixel_noise(x, 0.0, torch.Generator()), x)


def test_the_classifier_keeps_the_image_size_it_was_trained_at(tmp_path):
    model = classifier.InstrumentClassifier(image_size=32)
    classifier.save_classifier(tmp_path / "c.pt", model, {})
    loaded = classifier.load_classifier(tmp_path / "c.pt")
    predicted, _ = classifier.predict(loaded, np.zeros((2, 32, 32, 3), np.uint8))
    assert loaded.image_size == 32 and predicted.shape == (2,)
    with pytest.raises(ValueError, match=r"uint8 \[n, 32, 32, 3\]"):
        classifier.predict(loaded, np.zeros((2, 64, 64, 3), np.uint8))


def test_a_damaged_or_foreign_classifier_file_is_named(trained, tmp_path):
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(trained[0].read_bytes()[:1000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    for path in (damaged, foreign):
        with pytest.raises(ValueError, match=rf"^{path} is not a classifier saved by the classify stage"):
            classifier.load_classifier(path)
