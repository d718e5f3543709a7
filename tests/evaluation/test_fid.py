import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from pytorch_fid import fid_score, inception

from a2i.cli import main
from a2i.evaluation import fid

from .helpers import REAL_FRAMES, real_frames


def _gaussian_features(n, d, seed, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mixing) * scale + shift


# ------------------------------------------------------------------------------------------ the distance

def test_distance_of_a_set_with_itself_is_zero():
    features = _gaussian_features(400, 32, 0)
    mu, sigma = fid.statistics(features)
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-9
    assert abs(fid.FrechetReference(mu, sigma).distance(features)) < 1e-9


@pytest.mark.parametrize("n, d", [(500, 64), (40, 96)])  # full-rank and rank-deficient covariances
def test_equals_pytorch_fid_calculate_frechet_distance(n, d):
    real, generated = _gaussian_features(n, d, 1), _gaussian_features(n, d, 2, scale=1.3, shift=0.2)
    expected = fid_score.calculate_frechet_distance(*fid.statistics(real), *fid.statistics(generated))
    assert fid.frechet_distance(*fid.statistics(real), *fid.statistics(generated)) == pytest.approx(expected, rel=1e-7)
    assert fid.FrechetReference.from_features(real).distance(generated) == pytest.approx(expected, rel=1e-7)


def test_closed_form_two_gaussians():
    # N(m1, diag(a)) vs N(m2, diag(b)): |m1 - m2|^2 + sum (sqrt a - sqrt b)^2.
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    assert fid.frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(5.0 + 1.0 + 1.0 + 0.0)
    # Same shape, scaled covariance: sigma2 = c^2 sigma1 gives |dm|^2 + (1 - c)^2 tr(sigma1).
    rng = np.random.default_rng(3)
    root = rng.normal(size=(5, 5))
    sigma = root @ root.T
    assert fid.frechet_distance(m1[:1].repeat(5), sigma, m1[:1].repeat(5), 9.0 * sigma) == \
        pytest.approx(4.0 * np.trace(sigma))


def test_resampled_counts_equal_repeating_the_images():
    real, generated = _gaussian_features(300, 24, 4), _gaussian_features(30, 24, 5, shift=0.5)
    reference = fid.FrechetReference.from_features(real)
    draws = np.random.default_rng(0).integers(0, 30, size=(3, 30))
    counts = np.stack([np.bincount(row, minlength=30) for row in draws])
    expected = [reference.distance(generated[row]) for row in draws]
    assert reference.resampled(generated, counts) == pytest.approx(expected, rel=1e-7)


def test_a_set_of_one_image_is_refused():
    with pytest.raises(ValueError, match="at least 2 images"):
        fid.FrechetReference.from_features(np.ones((1, 8)))


# ------------------------------------------------------------------------------------------ weights

def test_weights_resolution(tmp_path):
    assert fid.resolve_inception_weights(None) is None  # TORCH_HOME is an empty folder in these tests
    with pytest.raises(ValueError, match=f"Inception weights not found at .*{fid.INCEPTION_FILE}"):
        fid.resolve_inception_weights(tmp_path / "nowhere.pth")
    cached = fid.default_inception_weights()
    assert cached.parent.parent.parent == tmp_path / "torch-home"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert fid.resolve_inception_weights(None) == cached


def test_bad_weights_are_named(tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ValueError, match="wrong.pth is not a pytorch-fid Inception state_dict"):
        fid.load_inception(wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth is not a readable torch state_dict"):
        fid.load_inception(garbage)


# ------------------------------------------------------------------------------------------ Inception path

def test_inception_features_match_pytorch_fid_on_real_frames(inception_weights, monkeypatch):
    """Same preprocessing (PIL RGB -> ToTensor -> bilinear 299 -> [-1, 1]) and the pool3 2048-d block."""
    files = sorted(REAL_FRAMES.glob("*.jpg"))
    monkeypatch.setattr(inception, "load_state_dict_from_url",
                        lambda *a, **k: torch.load(inception_weights, weights_only=True))
    theirs = fid_score.get_activations(files, inception.InceptionV3([3]), batch_size=len(files), num_workers=0)
    ours = fid.InceptionFeatures(inception_weights, batch_size=len(files))(fid.load_image_set(REAL_FRAMES))
    assert ours.shape == (len(files), 2048)
    assert np.abs(ours - theirs).max() <= 1e-6 * np.abs(theirs).max()
    assert ours.std(axis=0).mean() > 1e-3  # the random network still tells the frames apart


# `python -m pytorch_fid A B` with its weights loader pointed at our file (its CLI has no flag for it).
PYTORCH_FID_CLI = """
import runpy, sys, torch
from pytorch_fid import inception
weights = sys.argv.pop(1)
inception.load_state_dict_from_url = lambda *args, **kwargs: torch.load(weights, weights_only=True)
sys.argv[0] = "pytorch_fid"
runpy.run_module("pytorch_fid", run_name="__main__")
"""


@pytest.mark.slow  # pytorch-fid's scipy sqrtm of a 2048x2048 matrix: ~40 s on one busy core
def test_a2i_fid_equals_python_m_pytorch_fid_on_folders(inception_weights, tmp_path):
    images, _ = real_frames(size=48)
    for name, rows in (("a", [0, 1, 2]), ("b", [1, 2, 3])):
        (tmp_path / name).mkdir()
        for row in rows:
            Image.fromarray(images[row]).save(tmp_path / name / f"{row}.png")
    result = CliRunner().invoke(main, ["fid", str(tmp_path / "a"), str(tmp_path / "b"), "--weights",
                                       str(inception_weights), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("FID: ")
    ours = float(result.stdout.removeprefix("FID: "))
    single_thread = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    theirs = subprocess.run([sys.executable, "-c", PYTORCH_FID_CLI, str(inception_weights), str(tmp_path / "a"),
                             str(tmp_path / "b"), "--device", "cpu", "--num-workers", "0"],
                            capture_output=True, text=True, check=True, env=single_thread).stdout.splitlines()[-1]
    assert theirs.startswith("FID: ")
    assert ours > 0
    assert ours == pytest.approx(float(theirs.split()[-1]), rel=1e-5)


def test_reference_from_few_images_takes_its_root_from_the_features():
    few = _gaussian_features(12, 40, 6, shift=0.3)  # n < d: rank-deficient covariance
    generated = _gaussian_features(20, 40, 7)
    expected = fid.frechet_distance(*fid.statistics(few), *fid.statistics(generated))
    reference = fid.FrechetReference.from_features(few)
    assert np.allclose(reference.root @ reference.root, reference.sigma, atol=1e-10)
    assert reference.distance(generated) == pytest.approx(expected, rel=1e-7)
