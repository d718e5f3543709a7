"""Frechet distance (thesis 2.4.2, eq. 2.7) and pytorch-fid's InceptionV3 feature extractor.

FID = ||mu_1 - mu_2||^2 + Tr(S_1) + Tr(S_2) - 2 Tr((S_1 S_2)^(1/2)).
S_1 S_2 is similar to the symmetric PSD matrix R S_2 R with R = S_1^(1/2), so the last trace is the sum of the
square roots of its eigenvalues: symmetric eigendecompositions only, no `scipy.linalg.sqrtm` (slow at 2048-d,
inexact for the rank-deficient covariances of a few hundred images, and its `disp` argument that pytorch-fid
uses is going away). For a reference set (real images) fixed once, R is computed once and every generated set
or bootstrap resample X costs one Gram matrix of (X - mean) R: the bootstrap stays cheap at 2048-d.

The Inception network is pytorch-fid's own (TF-ported weights, pool3 2048-d, bilinear resize to 299, [-1, 1]),
fed exactly what its `ImagePathDataset` + `ToTensor` feed it, so `a2i fid` reproduces `python -m pytorch_fid`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from unittest import mock

import numpy as np

log = logging.getLogger(__name__)

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_NAME = "inception_v3_pool3"
INCEPTION_DIMS = 2048


# ------------------------------------------------------------------------------------------ Frechet distance

def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (round-off negative eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (pytorch-fid's `calculate_frechet_distance`)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    root = psd_sqrt(sigma1)
    product = root @ sigma2 @ root
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * cross)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of [n, d] features, as pytorch-fid computes them (float64)."""
    features = _check_features(features)
    return features.mean(axis=0), np.cov(features, rowvar=False)


class FrechetReference:
    """A fixed reference distribution (the real images) that many feature sets are measured against."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray):
        self.mu = np.asarray(mu, dtype=np.float64)
        self.sigma = np.asarray(sigma, dtype=np.float64)
        self.trace = float(np.trace(self.sigma))
        self.root = psd_sqrt(self.sigma)

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FrechetReference":
        return cls(*statistics(features))

    def distance(self, features: np.ndarray) -> float:
        """Frechet distance of the feature set [n, d] to the reference."""
        features = _check_features(features)
        return float(self.resampled(features, np.arange(len(features))[None])[0])

    def resampled(self, features: np.ndarray, resamples: np.ndarray) -> np.ndarray:
        """Distance of each resample of `features` (rows of `resamples` are row indices) to the reference."""
        features = _check_features(features)
        if features.shape[1] != self.mu.size:
            raise ValueError(f"features have {features.shape[1]} dims, the reference {self.mu.size}")
        projected = features @ self.root  # (x - mean) R == x R - mean(x R): project once, centre per resample
        return np.array([self._distance(features[rows], projected[rows]) for rows in resamples])

    def _distance(self, features: np.ndarray, projected: np.ndarray) -> float:
        n, dims = features.shape
        mean = features.mean(axis=0)
        centred = features - mean
        centred_projected = projected - projected.mean(axis=0)
        # The non-zero eigenvalues of A^T A and A A^T agree: use the smaller Gram matrix.
        gram = centred_projected @ centred_projected.T if n <= dims else centred_projected.T @ centred_projected
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(gram) / (n - 1), 0.0, None)).sum()
        diff = mean - self.mu
        return float(diff @ diff + self.trace + np.einsum("ij,ij->", centred, centred) / (n - 1) - 2.0 * cross)


def _check_features(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be [n, d], got shape {features.shape}")
    if len(features) < 2:
        raise ValueError(f"a Frechet distance needs at least 2 images per set, got {len(features)}")
    return features


# ------------------------------------------------------------------------------------------ Inception weights

def default_inception_weights() -> Path:
    """Where pytorch-fid's loader caches the weights: $TORCH_HOME/hub/checkpoints/<file>."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def resolve_inception_weights(weights: str | Path | None) -> Path | None:
    """The weights file to use: `weights` (must exist), else pytorch-fid's cached file if present, else None."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"Inception weights not found at {path}; {missing_weights_hint()}")
        return path
    cached = default_inception_weights()
    return cached if cached.is_file() else None


def missing_weights_hint() -> str:
    return (f"pass a weights file, or place {INCEPTION_FILE} in {default_inception_weights().parent}/ "
            f"(`a2i download` with inception in download.items fetches it)")


def load_inception(weights: str | Path, device: str = "cpu"):
    """pytorch-fid's InceptionV3 (pool3 block) with the state_dict in `weights`, in eval mode."""
    import torch
    from pytorch_fid import inception

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a tensor archive
        raise ValueError(f"{weights} is not a readable torch state_dict ({type(error).__name__})") from None
    # pytorch-fid builds its patched network and then fetches the weights by URL; handing it our file keeps
    # the network exactly pytorch-fid's, offline.
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
        try:
            model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[INCEPTION_DIMS]])
        except (RuntimeError, AttributeError, TypeError) as error:
            reason = str(error).strip().splitlines()[0]
            raise ValueError(f"{weights} is not a pytorch-fid Inception state_dict ({reason})") from None
    return model.eval().to(device)


class InceptionFeatures:
    """uint8 images [n, H, W, 3] -> pool3 features [n, 2048] (float64), preprocessed as pytorch-fid does."""

    name = INCEPTION_NAME

    def __init__(self, weights: str | Path, batch_size: int = 50, device: str = "cpu"):
        from a2i.io import sha256_file

        self.model = load_inception(weights, device)
        self.weights_sha256 = sha256_file(weights)
        self.batch_size = batch_size
        self.device = device

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch
        from tqdm import tqdm

        images = check_images(images)
        out = np.empty((len(images), INCEPTION_DIMS))
        for start in tqdm(range(0, len(images), self.batch_size), desc="inception", unit="batch", leave=False):
            batch = torch.from_numpy(images[start:start + self.batch_size]).permute(0, 3, 1, 2)
            # ToTensor(): uint8 -> float / 255; InceptionV3 itself resizes to 299 and rescales to [-1, 1].
            batch = batch.to(self.device, torch.float32).div(255)
            with torch.no_grad():
                pooled = self.model(batch)[0]
            out[start:start + len(batch)] = pooled.flatten(1).cpu().numpy()
        return out


# ------------------------------------------------------------------------------------------ image sets

def check_images(images: np.ndarray, source: str = "images") -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{source}: expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    return images


def load_image_set(path: str | Path) -> np.ndarray:
    """A folder of images (pytorch-fid's extensions and RGB conversion) or an .npz with `images`."""
    from PIL import Image
    from pytorch_fid.fid_score import IMAGE_EXTENSIONS

    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as archive:
            if "images" not in archive:
                raise ValueError(f"{path} has no 'images' array")
            images = archive["images"]
    elif path.is_dir():
        files = sorted(file for file in path.iterdir() if file.suffix[1:] in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"{path} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        arrays = []
        for file in files:
            with Image.open(file) as image:
                arrays.append(np.asarray(image.convert("RGB")))
        sizes = {array.shape for array in arrays}
        if len(sizes) > 1:
            raise ValueError(f"{path}: images differ in size ({', '.join(map(str, sorted(sizes)))})")
        images = np.stack(arrays)
    else:
        raise ValueError(f"{path} is neither a folder of images nor an .npz file")
    images = check_images(images, str(path))
    if len(images) < 2:
        raise ValueError(f"{path}: FID needs at least 2 images, found {len(images)}")
    return images


def fid_between(path1: str | Path, path2: str | Path, weights: str | Path | None = None, batch_size: int = 50,
                device: str = "cpu") -> float:
    """FID between two image sets (folders or .npz) with pytorch-fid's InceptionV3."""
    resolved = resolve_inception_weights(weights)
    if resolved is None:
        raise ValueError(f"Inception weights not found; {missing_weights_hint()}")
    first, second = load_image_set(path1), load_image_set(path2)
    extract = InceptionFeatures(resolved, batch_size, device)
    return FrechetReference.from_features(extract(first)).distance(extract(second))
