"""The AudioCLIP audio head: fbsp front end + ResNeXt with attention gates (ESResNeXt-fbsp) -> embedding.

Module and buffer names follow the released checkpoints (`audio.conv1`, `audio.layer1.0.conv2`,
`audio.att3.conv_depth`, `audio.fbsp.fc`, `audio.window`, ...), so they load with `strict=True`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from a2i.audioclip.fbsp import LinearFBSP, blackman_harris, frame_signal, int16_to_unit, power_db_bands

# depthwise kernel of each attention gate (height = frequency, width = time); padding keeps the size
_GATE_KERNELS = ((3, 1), (1, 5), (3, 1), (1, 5), (3, 5))


@dataclass(frozen=True)
class AudioHeadConfig:
    """Sizes of the audio head. The defaults are the released AudioCLIP head (ResNeXt-50 32x4d)."""

    n_fft: int = 2048
    win_length: int = 1654
    hop_length: int = 561
    bands: int = 3
    stem_width: int = 64
    planes: tuple[int, int, int, int] = (64, 128, 256, 512)
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    groups: int = 32
    width_per_group: int = 4
    embed_dim: int = 1024


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """The ResNeXt bottleneck block (1x1, grouped 3x3 with the stride, 1x1 to 4x planes; residual), with
    torchvision's layer names and creation order, so the released weights load and a seeded random init is the
    same. Written here rather than imported: torchvision's import costs more than the embed stage's work."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class AttentionGate(nn.Module):
    """Sigmoid gate computed from a block's input, max-pooled to the block output's size (`Attention2d`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int]):
        super().__init__()
        padding = (kernel_size[0] // 2, kernel_size[1] // 2)
        self.conv_depth = nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding, groups=in_channels)
        self.conv_point = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        x = F.adaptive_max_pool2d(x, size)
        return torch.sigmoid(self.bn(self.conv_point(self.conv_depth(x))))


class ESResNeXtFBSP(nn.Module):
    """int16-range audio [B, C, T] at 44.1 kHz -> unnormalised embedding [B, embed_dim].

    Each audio channel runs through the CNN on its own and the pooled features are summed over channels
    before `fc`, as in the reference. `loss_ttf()` is the filter-norm regulariser the reference adds to the
    training loss whenever audio is present.
    """

    def __init__(self, config: AudioHeadConfig = AudioHeadConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("window", blackman_harris(config.win_length))
        self.fbsp = LinearFBSP(config.n_fft // 2 + 1)

        self.conv1 = nn.Conv2d(config.bands, config.stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(config.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        channels = config.stem_width
        for index, (planes, blocks) in enumerate(zip(config.planes, config.layers), start=1):
            layer, out_channels = self._make_layer(channels, planes, blocks, stride=1 if index == 1 else 2)
            self.add_module(f"layer{index}", layer)
            self.add_module(f"att{index}", AttentionGate(channels, out_channels, _GATE_KERNELS[index - 1]))
            channels = out_channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.att5 = AttentionGate(channels, channels, _GATE_KERNELS[4])
        self.fc = nn.Linear(channels, config.embed_dim)
        self._init_weights()

    def _make_layer(self, in_channels: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
        out_channels = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
        kwargs = {"groups": self.config.groups, "base_width": self.config.width_per_group}
        layers = [Bottleneck(in_channels, planes, stride, downsample, **kwargs)]
        layers += [Bottleneck(out_channels, planes, **kwargs) for _ in range(1, blocks)]
        return nn.Sequential(*layers), out_channels

    def _init_weights(self) -> None:
        # torchvision's ResNet init, as in the reference (only matters without a checkpoint)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def log_power(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, C, T] int16-range audio -> dB band maps [B, C, bands, bins, frames] (the CNN input)."""
        batch, channels, _ = audio.shape
        x = int16_to_unit(audio.to(self.window.dtype)).reshape(batch * channels, -1)
        with torch.no_grad():
            frames = frame_signal(x, self.window, self.config.hop_length, self.config.n_fft)
        re, im = self.fbsp(frames)
        x_db = power_db_bands(re, im, self.config.bands)
        return x_db.reshape(batch, channels, *x_db.shape[1:])

    def features(self, x_db: torch.Tensor) -> torch.Tensor:
        """One audio channel's dB map [B, bands, bins, frames] -> gated, pooled features [B, channels]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x_db))))
        for index in range(1, 5):
            gate_input = x
            x = getattr(self, f"layer{index}")(x)
            x = x * getattr(self, f"att{index}")(gate_input, x.shape[-2:])
        pooled = self.avgpool(x)
        pooled = pooled * self.att5(x, pooled.shape[-2:])
        return torch.flatten(pooled, 1)

    def pooled(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, C, T] -> features before `fc`, summed over audio channels [B, channels]."""
        x_db = self.log_power(audio)
        per_channel = [self.features(x_db[:, c]) for c in range(x_db.shape[1])]
        return torch.stack(per_channel, dim=-1).sum(dim=-1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(audio))

    def loss_ttf(self) -> torch.Tensor:
        """Filter-norm regulariser of the fbsp bank (scalar, differentiable w.r.t. m, fb and fc)."""
        return self.fbsp.filter_norm_loss(self.config.n_fft)
