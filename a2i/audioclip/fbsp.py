"""The ESResNeXt-fbsp front end: framing, the trainable Fourier filter bank (fbsp) and the dB band map.

The filter bank is recomputed from its three parameter vectors on every call, in float32 and in the same
order of operations as the reference (AudioCLIP `model/esresnet/fbsp.py`): its weights are only accurate to
~1e-4, and pure tones or silence put many bins below that leakage floor, where `10*log10` turns any ulp-level
change of the weights into dB-sized differences. Keeping the operation order keeps the outputs within 1e-4 of
the reference embeddings (see `tests/audioclip/test_model_golden.py`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

INT16_MIN = -32768.0
INT16_MAX = 32767.0
FILTER_EPS = 1e-8  # keeps the sinc argument and the gradient normalisation finite
POWER_FLOOR = 1e-18  # power values <= 0 are replaced by this before log10


def int16_to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map the int16 value range linearly onto [-1, 1] (the reference's `scale`, same float32 steps)."""
    return ((x - INT16_MIN) * 2.0) / (INT16_MAX - INT16_MIN) + (-1.0)


def frame_count(num_samples: int, win_length: int, hop_length: int) -> int:
    """Frames of `frame_signal`: 1 + ceil((T - win) / hop), or 1 for a signal no longer than a window."""
    if num_samples <= win_length:
        return 1
    return 1 + -(-(num_samples - win_length) // hop_length)


def frame_signal(x: torch.Tensor, window: torch.Tensor, hop_length: int, n_fft: int) -> torch.Tensor:
    """[..., T] -> windowed frames [..., frames, n_fft].

    The signal is zero-padded at both ends (floor half on the left) to cover whole frames; each frame is
    multiplied by `window` and zero-padded symmetrically from the window length to `n_fft`.
    """
    win_length = window.shape[0]
    frames = frame_count(x.shape[-1], win_length, hop_length)
    pad = (frames - 1) * hop_length + win_length - x.shape[-1]
    x = F.pad(x, [pad // 2, pad - pad // 2])
    framed = x.unfold(-1, win_length, hop_length) * window
    extra = n_fft - win_length
    return F.pad(framed, [extra // 2, extra - extra // 2])


def _normalize_grad(grad: torch.Tensor) -> torch.Tensor:
    """The reference divides the fbsp parameter gradients by their inf-norm (a per-vector step-size control)."""
    return grad / (torch.linalg.vector_norm(grad, ord=math.inf) + FILTER_EPS)


class LinearFBSP(nn.Module):
    """Trainable Fourier basis: filter k = sqrt(fb_k) * sinc(fb_k t / m_k)^m_k * exp(-i fc_k t) / sqrt(n_fft).

    `m` (window exponent, init 0), `fb` (bandwidth, init 1) and `fc` (centre, init k) are [out_features];
    at init the filters are the plain DFT basis. `bias` is an empty parameter kept only because it is a key
    of the released state dicts.
    """

    def __init__(self, out_features: int):
        super().__init__()
        self.out_features = out_features
        self.m = nn.Parameter(torch.zeros(out_features))
        self.fb = nn.Parameter(torch.ones(out_features))
        self.fc = nn.Parameter(torch.arange(out_features, dtype=torch.float32))
        self.bias = nn.Parameter(torch.empty(0))
        for param in (self.m, self.fb, self.fc):
            param.register_hook(_normalize_grad)
        self._cache: tuple[tuple, tuple[torch.Tensor, torch.Tensor]] | None = None

    def weights(self, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary filter matrices, each [out_features, in_features]."""
        dtype, device = self.fc.dtype, self.fc.device
        t = math.pi * torch.linspace(-1.0, 1.0, in_features, dtype=dtype, device=device).reshape(1, -1) + FILTER_EPS
        m, fb, fc = (p.reshape(-1, 1) for p in (self.m, self.fb, self.fc))

        kernel_re, kernel_im = torch.cos(fc * t), -torch.sin(fc * t)
        arg = fb * t / (m + FILTER_EPS)
        win = torch.where(arg == 0, torch.ones_like(arg), torch.sin(arg) / arg)
        # real ** real exponent, taken as a complex power: |w|^m * exp(i m arg(w)), arg(w) in {0, pi}
        magnitude = torch.sqrt(win**2)
        phase = torch.atan2(torch.zeros_like(win), win)
        win_abs = (magnitude**2) ** (0.5 * m)
        win_re, win_im = win_abs * torch.cos(m * phase), win_abs * torch.sin(m * phase)

        scale = fb.sqrt()
        norm = in_features**0.5
        weight_re = scale * (win_re * kernel_re - win_im * kernel_im) / norm
        weight_im = scale * (win_re * kernel_im + win_im * kernel_re) / norm
        return weight_re, weight_im

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[..., in_features] real frames -> (real, imaginary) responses, each [..., out_features]."""
        weight_re, weight_im = self._weights_for_forward(frames.shape[-1])
        return F.linear(frames, weight_re), F.linear(frames, weight_im)

    def _weights_for_forward(self, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`weights`, reused across calls without autograd while the parameters are unchanged.

        Building the bank costs about as much as the CNN on a 1 s clip (2M sin/cos/pow for the thesis size);
        in-place updates (optimizer steps, `load_state_dict`) bump the version counters and invalidate it.
        Parameters made under inference mode (a head loaded inside `torch.inference_mode()`) have no version
        counter, so nothing would invalidate a cache: their bank is rebuilt on every call. An edit through
        `.data` bumps no counter either: change these parameters in place only through the tensors themselves.
        """
        params = (self.m, self.fb, self.fc)
        if torch.is_grad_enabled() or any(p.is_inference() for p in params):
            self._cache = None
            return self.weights(in_features)
        key = (in_features, *((p.data_ptr(), p._version, p.device, p.dtype) for p in params))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.weights(in_features))
        return self._cache[1]

    def filter_norm_loss(self, in_features: int) -> torch.Tensor:
        """MSE between each filter's L2 norm and 1 (the reference's `loss_ttf` for a normalised bank)."""
        weight_re, weight_im = self.weights(in_features)
        norms = torch.sqrt((weight_re**2 + weight_im**2).sum(dim=-1))
        return F.mse_loss(norms, torch.ones_like(norms))


def blackman_harris(win_length: int) -> torch.Tensor:
    """Periodic Blackman-Harris window (scipy's `get_window("blackmanharris", fftbins=True)`) as float32."""
    coefficients = [0.35875, 0.48829, 0.14128, 0.01168]
    return torch.signal.windows.general_cosine(win_length, a=coefficients, sym=False, dtype=torch.float64).float()


def power_db_bands(re: torch.Tensor, im: torch.Tensor, bands: int) -> torch.Tensor:
    """fbsp responses [N, frames, bins] -> dB power maps [N, bands, bins // bands, frames].

    The bins are cut into `bands` equal frequency bands (the remainder at the top is dropped); the bands
    are the input channels of the CNN.
    """
    per_band = re.shape[-1] // bands
    power = (re**2 + im**2)[..., : bands * per_band].transpose(-1, -2)
    power = power.reshape(power.shape[0], bands, per_band, power.shape[-1])
    power = torch.where(power > 0.0, power, torch.full_like(power, POWER_FLOOR))
    return torch.log10(power).mul(10.0)
