"""Frechet distance (thesis 2.4.2, eq. 2.7) and pytorch-fid's InceptionV3 feature extractor.

FID = ||mu_1 - mu_2||^2 + Tr(S_1) + Tr(S_2) - 2 Tr((S_1 S_2)^(1/2)).
S_1 S_2 is similar to the symmetric PSD matrix R S_2 R with R = S_1^(1/2), so the last trace is the sum of the
square roots of its eigenvalues: symmetric eigendecompositions only (float64), no `scipy.linalg.sqrtm` (slow at 2048-d,
inexact for the rank-deficient covariances of a few hundred images, and its `disp` argument that pytorch-fid
uses is going away). For a reference set (real images) fixed once, R is computed once and every generated set
or bootstrap resample X costs one Gram matrix of (X - mean) R, of size min(n, d): the bootstrap stays cheap
at 2048-d.

The Inception network is pytorch-fid's own (TF-ported weights, pool3 2048-d, bilinear resize to 299, [-1, 1]),
fed exactly what its `ImagePathDataset` + `ToTensor` feed it, so `a2i fid` reproduces `python -m pytorch_fid`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from a2i.evaluation import INCEPTION_NAME
from a2i.io import load_npz

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_DIMS = 2048


# ------------------------------------------------------------------------------------------ Frechet distance
# float64 torch on one thread: BLAS/LAPACK threads stall badly when other jobs share the cores, and gain little
# here (benchmarks/RESULTS.md, "Frechet distance").

@contextlib.contextmanager
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (round-off negative eigenvalues -> 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0.0).sqrt()) @ vectors.T


def _trace_sqrt_gram(a: torch.Tensor) -> torch.Tensor:
    """Tr((A^T A)^(1/2)): A^T A and A A^T share their non-zero eigenvalues, so use the smaller one."""
    gram = a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a
    return torch.linalg.eigvalsh(gram).clamp(min=0.0).sqrt().sum()


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (pytorch-fid's `calculate_frechet_distance`)."""
    mu1, mu2 = (torch.as_tensor(np.atleast_1d(m), dtype=torch.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (torch.as_tensor(np.atleast_2d(s), dtype=torch.float64) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: mu {tuple(mu1.shape)} vs {tuple(mu2.shape)}, "
                         f"sigma {tuple(sigma1.shape)} vs {tuple(sigma2.shape)}")
    with one_thread():
        # R S2 R = (S2^(1/2) R)^T (S2^(1/2) R).
        cross = _trace_sqrt_gram(_psd_sqrt(sigma2) @ _psd_sqrt(sigma1))
        return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2.0 * cross)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of [n, d] features, as pytorch-fid computes them (float64)."""
    x = torch.from_numpy(_check_features(features))
    with one_thread():
        centred = x - x.mean(0)
        return x.mean(0).numpy(), (centred.T @ centred / (len(x) - 1)).numpy()


class FrechetReference:
    """A fixed reference distribution (the real images) that many feature sets are measured against."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray, root: torch.Tensor | None = None):
        self.mu = torch.as_tensor(np.asarray(mu), dtype=torch.float64)
        self.sigma = torch.as_tensor(np.asarray(sigma), dtype=torch.float64)
        self.trace = float(self.sigma.trace())
        if root is None:
            with one_thread():
                root = _psd_sqrt(self.sigma)
        self.root = root  # sigma^(1/2)

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FrechetReference":
        mu, sigma = statistics(features)
        x = torch.from_numpy(_check_features(features))
        if len(x) > x.shape[1]:
            return cls(mu, sigma)
        with one_thread():
            # Fewer images than dimensions: with centred X = U diag(s) V^T, sigma^(1/2) = V diag(s/sqrt(n-1)) V^T
            # comes from an n x d SVD instead of a d x d eigendecomposition.
            _, singular, vh = torch.linalg.svd(x - x.mean(0), full_matrices=False)
            return cls(mu, sigma, (vh.T * (singular / (len(x) - 1) ** 0.5)) @ vh)

    def distance(self, features: np.ndarray) -> float:
        """Frechet distance of the feature set [n, d] to the reference."""
        features = _check_features(features)
        return float(self.resampled(features, np.ones((1, len(features)), dtype=np.int64))[0])

    def resampled(self, features: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Distance to the reference of each bootstrap resample of `features`, given as a row of `counts`
        (how often each image was drawn; each row sums to n)."""
        x = torch.from_numpy(_check_features(features))
        if x.shape[1] != len(self.mu):
            raise ValueError(f"features have {x.shape[1]} dims, the reference {len(self.mu)}")
        with one_thread():
            y = x @ self.root  # (x - mean) R == x R - mean(x R): project once, centre per resample
            return np.array([self._distance(x, y, torch.from_numpy(row)) for row in np.asarray(counts)])

    def _distance(self, x: torch.Tensor, y: torch.Tensor, counts: torch.Tensor) -> float:
        drawn = counts > 0
        x, y, counts = x[drawn], y[drawn], counts[drawn].double()
        n = counts.sum()
        mean = counts @ x / n
        spread = counts @ (x - mean).square().sum(1) / (n - 1)
        cross = _trace_sqrt_gram((y - counts @ y / n) * (counts / (n - 1)).sqrt()[:, None])
        return float((mean - self.mu).square().sum() + self.trace + spread - 2.0 * cross)


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
    return (f"`a2i download --item inception` fetches {INCEPTION_FILE} into data/download/inception/: pass that "
            f"file (--weights, or evaluate.fid_weights) or place it in {default_inception_weights().parent}/")


def load_inception(weights: str | Path, device: str = "cpu"):
    """pytorch-fid's InceptionV3 (pool3 block) with the state_dict in `weights`, in eval mode."""
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
        [images] = load_npz(path, "images")
    elif path.is_dir():
        files = sorted(file for file in path.iterdir() if file.suffix[1:] in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"{path} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        arrays = []
        for file in files:
            try:
                with Image.open(file) as image:
                    arrays.append(np.asarray(image.convert("RGB")))
            except OSError as error:  # PIL's UnidentifiedImageError and truncated files are OSErrors
                raise ValueError(f"{file} is not a readable image ({error})") from None
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
