import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from a2i.data.layout import INSTRUMENTS
from a2i.evaluation import classifier
from a2i.evaluation.evaluate import evaluate_variant, paired_adherence
from a2i.evaluation.stats import collect_metrics
from a2i.evaluation.fid import FrechetReference

from .helpers import make_prepared, real_frames, write_samples

IDENTITY = ["variant", "alignment", "length_s", "study", "epoch", "guidance", "n_seeds", "n_images"]
ADHERENCE = ["adherence", "adherence_sd", "adherence_ci_low", "adherence_ci_high"]
ACCURACIES = [f"acc_{name}" for name in INSTRUMENTS]


def _suffixed(prefix):
    return [f"{prefix}_{split}{suffix}" for split in ("train", "test") for suffix in ("", "_sd", "_ci_low", "_ci_high")]


@pytest.fixture
def samples(prepared, tmp_path):
    """Generated test images of 'text-2s-pca': epoch 2 is noise-corrupted, epoch 4 is the real test set."""
    test = classifier.real_split(prepared, "test")
    rng = np.random.default_rng(0)
    folder = tmp_path / "samples"
    for seed in (0, 1):
        noisy = np.clip(test.images + rng.normal(0, 90, test.images.shape), 0, 255).astype(np.uint8)
        write_samples(folder, 2, 3.0, seed, noisy, test.labels)
        write_samples(folder, 4, 3.0, seed, test.images, test.labels)
    write_samples(folder, 4, 1.0, 0, test.images, test.labels)
    return folder


def _evaluate(samples, prepared, trained, out, variant="text-2s-pca", fid_weights=None, bootstrap=50):
    return evaluate_variant(variant, prepared, samples, trained[0], out / "metrics" / variant,
                            out / "plots" / variant, fid_weights, bootstrap, 64, 0)


def test_metrics_cover_every_checkpoint_and_guidance(samples, prepared, trained, tmp_path):
    _evaluate(samples, prepared, trained, tmp_path)
    folder = tmp_path / "metrics" / "text-2s-pca"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_002_g3.json", "epoch_004_g1.json", "epoch_004_g3.json"]
    metrics = json.loads((folder / "epoch_002_g3.json").read_text())
    assert set(IDENTITY + ADHERENCE + ACCURACIES + _suffixed("fid_classifier") + ["feature_extractor"]) <= set(metrics)
    assert not any(key.startswith("fid_train") or key.startswith("fid_test") for key in metrics)
    assert all(not isinstance(value, (dict, list)) for value in metrics.values())  # flat
    assert metrics["variant"] == "text-2s-pca" and metrics["alignment"] == "text" and metrics["length_s"] == 2
    assert metrics["study"] == "pca" and metrics["epoch"] == 2 and metrics["guidance"] == 3.0
    assert metrics["n_seeds"] == 2 and metrics["n_images"] == 4 * len(INSTRUMENTS)
    assert metrics["feature_extractor"] == "classifier_penultimate"
    for name in ("adherence", "fid_classifier_train", "fid_classifier_test"):
        assert metrics[f"{name}_ci_low"] <= metrics[f"{name}_ci_high"]
        assert metrics[f"{name}_sd"] >= 0
    assert metrics["adherence_ci_low"] <= metrics["adherence"] <= metrics["adherence_ci_high"]
    single = json.loads((folder / "epoch_004_g1.json").read_text())
    assert single["n_seeds"] == 1 and single["adherence_sd"] is None and single["fid_classifier_test_sd"] is None


def test_adherence_and_fid_classifier_are_what_they_claim(samples, prepared, trained, tmp_path):
    _evaluate(samples, prepared, trained, tmp_path)
    folder = tmp_path / "metrics" / "text-2s-pca"
    noisy, clean = (json.loads((folder / f"epoch_00{e}_g3.json").read_text()) for e in (2, 4))
    model = classifier.load_classifier(trained[0])
    test = classifier.real_split(prepared, "test")
    reference = FrechetReference.from_features(classifier.predict(model, test.images)[1])
    per_seed, distances = [], []
    for seed in (0, 1):
        with np.load(samples / f"epoch_002_g3_s{seed}.npz") as archive:
            predicted, features = classifier.predict(model, archive["images"])
            per_seed.append(predicted == archive["labels"])
            distances.append(reference.distance(features))
    assert noisy["adherence"] == pytest.approx(np.mean([hits.mean() for hits in per_seed]))
    assert noisy["adherence_sd"] == pytest.approx(np.std([hits.mean() for hits in per_seed], ddof=1))
    assert noisy["acc_cello"] == pytest.approx(np.concatenate(per_seed)[np.tile(test.labels, 2) == 1].mean())
    assert noisy["fid_classifier_test"] == pytest.approx(np.mean(distances))
    # The real test images themselves: full adherence, and nearly no distance to the real test set.
    assert clean["adherence"] == 1.0 and all(clean[key] == 1.0 for key in ACCURACIES)
    assert clean["fid_classifier_test"] == pytest.approx(0.0, abs=1e-6)
    assert clean["fid_classifier_train"] < noisy["fid_classifier_train"]


def test_confusion_matrix_csv_and_png(samples, prepared, trained, tmp_path):
    _evaluate(samples, prepared, trained, tmp_path)
    plots = tmp_path / "plots" / "text-2s-pca"
    confusion = pd.read_csv(plots / "epoch_004_g3.csv")
    assert list(confusion.columns) == ["actual", "predicted"]
    assert len(confusion) == 2 * 4 * len(INSTRUMENTS)
    assert (confusion["actual"] == confusion["predicted"]).all()
    assert set(confusion["actual"]) == set(INSTRUMENTS)
    with Image.open(plots / "epoch_004_g3.png") as image:
        assert image.format == "PNG" and image.size[0] > 300


def test_evaluate_is_deterministic_and_caches_real_statistics(samples, prepared, trained, tmp_path, monkeypatch):
    _evaluate(samples, prepared, trained, tmp_path / "first")
    cache = tmp_path / "xdg-cache" / "a2i" / "fid_stats"
    cached = sorted(cache.iterdir())
    assert len(cached) == 2  # train and test
    cached[0].write_bytes(cached[0].read_bytes()[:100])  # a damaged cache entry is computed again
    _evaluate(samples, prepared, trained, tmp_path / "second")
    assert sorted(cache.iterdir()) == cached
    for name in ("epoch_002_g3.json", "epoch_004_g1.json"):
        first, second = ((tmp_path / run / "metrics" / "text-2s-pca" / name).read_text() for run in ("first", "second"))
        assert first == second
    assert len(np.load(cached[0])["mu"]) > 0
    # the cache lies outside DVC: statistics of other evaluation code are computed anew, not reused
    monkeypatch.setattr("a2i.evaluation.evaluate.code_digest", lambda module: "other code")
    _evaluate(samples, prepared, trained, tmp_path / "third")
    assert len(list(cache.iterdir())) == 4


def test_collect_metrics(samples, prepared, trained, tmp_path):
    _evaluate(samples, prepared, trained, tmp_path)
    frame = collect_metrics(tmp_path / "metrics")
    assert len(frame) == 3
    assert frame[["epoch", "guidance"]].values.tolist() == [[2, 3.0], [4, 1.0], [4, 3.0]]
    assert set(IDENTITY + ADHERENCE + ACCURACIES + ["feature_extractor"]) <= set(frame.columns)
    (tmp_path / "metrics" / "other.json").write_text('{"loss": 1}')
    with pytest.raises(ValueError, match="other.json is not an evaluate metrics file"):
        collect_metrics(tmp_path / "metrics")


def test_inception_fid_on_real_frames(trained, inception_weights, tmp_path):
    """With Inception weights, FID (not fid_classifier) against the real train and test images; the generated
    set here is the real Sub-URMP frames of the fixtures."""
    prepared = make_prepared(tmp_path / "prepared", {"train": 1, "val": 1, "test": 1}, classes=3)
    images, labels = real_frames()
    write_samples(tmp_path / "samples", 10, 3.0, 0, images, labels)
    (metrics,) = _evaluate(tmp_path / "samples", prepared, trained, tmp_path, variant="mutual-3s",
                           fid_weights=inception_weights, bootstrap=5)
    assert metrics["feature_extractor"] == "inception_v3_pool3"
    assert set(_suffixed("fid")) <= set(metrics) and not any(k.startswith("fid_classifier") for k in metrics)
    assert metrics["fid_train"] > 0 and metrics["fid_test"] > 0 and metrics["n_images"] == len(images)
    assert json.loads((tmp_path / "metrics" / "mutual-3s" / "epoch_010_g3.json").read_text()) == metrics


@pytest.mark.parametrize("name, content, message", [
    ("epoch_2_g3_s0.npz", None, "not named like a2i.variants.sample_name"),
    ("epoch_002_g3_s0.npz", {"images": np.zeros((3, 32, 32, 3), np.uint8)},
     r"images must be uint8 \[n, 64, 64, 3\] like the classifier's"),
    ("epoch_002_g3_s0.npz", {"labels": np.array([0, 1, 13])}, r"labels outside 0..12"),
    ("epoch_002_g3_s1.npz", {"images": np.zeros((2, 64, 64, 3), np.uint8), "labels": np.array([0, 1])},
     r"differ in their conditions"),
    ("epoch_002_g3_s1.npz", {"labels": np.array([1, 0, 2])}, r"differ in their conditions"),
])
def test_bad_samples_are_named(prepared, trained, tmp_path, name, content, message):
    folder = tmp_path / "samples"
    write_samples(folder, 2, 3.0, 0, np.zeros((3, 64, 64, 3), np.uint8), np.array([0, 1, 2]))
    arrays = {"images": np.zeros((3, 64, 64, 3), np.uint8), "labels": np.array([0, 1, 2]), **(content or {})}
    np.savez(folder / name, **arrays)
    with pytest.raises(ValueError, match=message):
        _evaluate(folder, prepared, trained, tmp_path)
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_sample_files_are_named(prepared, trained, tmp_path, damage):
    path = write_samples(tmp_path / "samples", 2, 3.0, 0, np.zeros((3, 64, 64, 3), np.uint8), np.array([0, 1, 2]))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"garbage")
    with pytest.raises(ValueError, match=rf"^{path} is not a readable .npz archive"):
        _evaluate(tmp_path / "samples", prepared, trained, tmp_path)
    assert not (tmp_path / "metrics").exists()


def test_seeds_that_repeat_the_same_images_leave_the_interval_as_wide_as_one_seed(prepared, trained, tmp_path):
    # The seeds share their test conditions: resampling the conditions once for all keeps the interval that of
    # the conditions, where a resample per seed would narrow it by sqrt(seeds) with no new information.
    test = classifier.real_split(prepared, "test")
    noisy = np.clip(test.images + np.random.default_rng(0).normal(0, 90, test.images.shape), 0, 255).astype(np.uint8)
    widths = {}
    for seeds in (1, 4):
        folder = tmp_path / f"seeds{seeds}"
        for seed in range(seeds):
            write_samples(folder, 2, 3.0, seed, noisy, test.labels)
        [metrics] = evaluate_variant("text-2s", prepared, folder, trained[0], tmp_path / f"m{seeds}",
                                     tmp_path / f"p{seeds}", None, 2000, 64, 0)
        assert 0.1 < metrics["adherence"] < 0.9 and metrics["n_seeds"] == seeds
        widths[seeds] = metrics["adherence_ci_high"] - metrics["adherence_ci_low"]
    assert widths[4] == pytest.approx(widths[1], rel=0.15)


def test_a_cfg_sweep_of_the_main_guidance_alone_leaves_empty_outputs(prepared, trained, tmp_path):
    (tmp_path / "sweep").mkdir()  # what `sample_cfg` leaves when sample.cfg_scales holds only sample.guidance
    assert evaluate_variant("text-2s", prepared, tmp_path / "sweep", trained[0], tmp_path / "m", tmp_path / "p",
                            None, 10, 64, 0, empty_ok=True) == []
    assert [list((tmp_path / folder).iterdir()) for folder in ("m", "p")] == [[], []]
    with pytest.raises(ValueError, match=r"nowhere not found \(run the sample stage that writes it\)"):
        evaluate_variant("text-2s", prepared, tmp_path / "nowhere", trained[0], tmp_path / "m2", tmp_path / "p2",
                         None, 10, 64, 0, empty_ok=True)
    assert not (tmp_path / "m2").exists()


def test_missing_inputs_are_named(prepared, trained, tmp_path):
    with pytest.raises(ValueError, match="holds no generated samples"):
        _evaluate(tmp_path, prepared, trained, tmp_path)
    write_samples(tmp_path / "s", 2, 3.0, 0, np.zeros((3, 64, 64, 3), np.uint8), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="classifier .*missing.pt not found"):
        evaluate_variant("text-1s", prepared, tmp_path / "s", tmp_path / "missing.pt", tmp_path / "m", tmp_path / "p",
                         None, 10, 64, 0)
    with pytest.raises(ValueError, match="Inception weights not found at .*nowhere.pth"):
        _evaluate(tmp_path / "s", prepared, trained, tmp_path, fid_weights=str(tmp_path / "nowhere.pth"))


def test_paired_adherence_scores_files_of_the_same_conditions_and_their_difference(prepared, trained, tmp_path):
    test = classifier.real_split(prepared, "test")
    wrong = np.roll(test.images, len(test.images) // 2, axis=0)  # other instruments' frames, same conditions
    write_samples(tmp_path, 1, 3.0, 0, test.images, test.labels)
    write_samples(tmp_path, 2, 3.0, 0, wrong, test.labels)
    files = {"slow": tmp_path / "epoch_001_g3_s0.npz", "fast": tmp_path / "epoch_002_g3_s0.npz"}
    result = paired_adherence(files, classifier.load_classifier(trained[0]), bootstrap=200)
    assert result["slow"]["adherence"] == 1.0 and result["slow"]["n"] == len(test.labels)
    fast = result["fast"]
    assert fast["minus_slow"] == fast["adherence"] - 1.0 < -0.5
    assert fast["minus_slow_ci_low"] <= fast["minus_slow"] <= fast["minus_slow_ci_high"] < 0
    write_samples(tmp_path, 3, 3.0, 0, test.images, np.roll(test.labels, 1))
    with pytest.raises(ValueError, match="not conditioned on the same test samples"):
        paired_adherence({**files, "other": tmp_path / "epoch_003_g3_s0.npz"},
                         classifier.load_classifier(trained[0]), bootstrap=10)


def test_collect_metrics_refuses_impossible_metrics_in_one_line(tmp_path):
    path = tmp_path / "text-2s" / "epoch_002_g3.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"variant": "text-2s", "epoch": 2, "guidance": 3.0, "adherence": float("nan")}))
    with pytest.raises(ValueError, match=rf"^{path}: impossible metrics \(adherence=nan: not finite\)"):
        collect_metrics(tmp_path)


def test_both_feature_networks_run_on_the_device_they_are_given(trained, inception_weights):
    # The evaluate stage hands select_device's choice (a GPU when present) to the classifier and to Inception:
    # each must move its network and every batch there, not leave either on the CPU by default.
    import torch

    from a2i.evaluation.fid import InceptionFeatures

    from .helpers import toy_images

    seen = []

    def record(module, inputs):
        seen.append((type(module).__name__, inputs[0].device, next(module.parameters()).device))

    images = toy_images(np.arange(3), seed=0)
    model = classifier.load_classifier(trained[0], device="cpu")
    model.body.register_forward_pre_hook(record)
    classifier.ClassifierFeatures(model, batch_size=2, device="cpu")(images)
    inception = InceptionFeatures(inception_weights, batch_size=2, device="cpu")
    inception.model.register_forward_pre_hook(record)
    inception(images)
    cpu = torch.device("cpu")
    assert [name for name, *_ in seen] == ["Sequential"] * 2 + ["InceptionV3"] * 2
    assert {(batch, weights) for _, batch, weights in seen} == {(cpu, cpu)}


@pytest.fixture
def upsampled(prepared, tmp_path):
    """A project root whose sample_sr output upsampled `text-2s` epoch 4 (the toy 64x64 crops stand in for the
    high-resolution ones): bicubic = the real test images, diffusion = the same under heavy noise."""
    import shutil

    hr = tmp_path / "prepared"
    shutil.copytree(prepared, hr)
    shutil.copy(hr / "images.npy", hr / "images_hr.npy")
    test = classifier.real_split(prepared, "test")
    noisy = np.clip(test.images + np.random.default_rng(0).normal(0, 90, test.images.shape), 0, 255).astype(np.uint8)
    root = tmp_path / "project"
    write_samples(root / "data/samples_sr/bicubic", 4, 3.0, 0, test.images, test.labels)
    write_samples(root / "data/samples_sr/diffusion", 4, 3.0, 0, noisy, test.labels)
    selected = root / "data/samples_sr/selected.json"
    selected.write_text(json.dumps({"variant": "text-2s", "epoch": 4, "guidance": 3.0}))
    return hr, root, test


def _evaluate_upsampled(upsampled, trained, out):
    from a2i.evaluation.evaluate import evaluate_upsampled

    hr, root, _ = upsampled
    return evaluate_upsampled(hr, root, trained[0], out, None, 50, 64, 0)


def test_upsampled_images_are_scored_per_method_under_the_selected_checkpoint(upsampled, trained, tmp_path):
    results = _evaluate_upsampled(upsampled, trained, tmp_path / "metrics")
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["bicubic.json", "diffusion.json"]
    bicubic = json.loads((tmp_path / "metrics" / "bicubic.json").read_text())
    assert bicubic == results["bicubic"]
    assert bicubic["method"] == "bicubic" and bicubic["variant"] == "text-2s" and bicubic["epoch"] == 4
    assert bicubic["adherence"] == 1.0 and bicubic["resolution"] == 64
    assert results["diffusion"]["adherence"] < 1.0
    assert bicubic["fid_classifier_test"] < results["diffusion"]["fid_classifier_test"]


@pytest.mark.parametrize("damage, message", [
    ("missing", r"selected.json not found: run the sample_sr stage"),
    ("epoch", r"holds the images of epoch 2 at guidance 3, not those of the selected checkpoint"),
    ("conditions", r"diffusion: not conditioned on the same test samples as bicubic's images"),
])
def test_upsampled_images_of_another_checkpoint_or_conditions_are_refused(upsampled, trained, tmp_path, damage,
                                                                          message):
    _, root, test = upsampled
    folder = root / "data/samples_sr/diffusion"
    if damage == "missing":
        (root / "data/samples_sr/selected.json").unlink()
    elif damage == "epoch":
        (folder / "epoch_004_g3_s0.npz").rename(folder / "epoch_002_g3_s0.npz")
    else:
        write_samples(folder, 4, 3.0, 0, test.images, np.roll(test.labels, 1))
    with pytest.raises(ValueError, match=message):
        _evaluate_upsampled(upsampled, trained, tmp_path / "metrics")
    assert not (tmp_path / "metrics").exists()


def test_the_stages_ignore_pytorch_fids_cache_unless_params_name_the_weights(trained, inception_weights, tmp_path,
                                                                             monkeypatch):
    import shutil

    from a2i.evaluation.evaluate import feature_space
    from a2i.evaluation.fid import INCEPTION_FILE

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub/checkpoints").mkdir(parents=True)
    shutil.copy(inception_weights, tmp_path / "hub/checkpoints" / INCEPTION_FILE)
    model = classifier.load_classifier(trained[0])
    assert feature_space(None, model, trained[0], 8, "cpu")[2] == "fid_classifier"
    assert feature_space(str(inception_weights), model, trained[0], 8, "cpu")[2] == "fid"
