"""AudioCLIP structure, the tiny size's shapes and gradients, preprocessing and bad-input errors."""

import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

from a2i.audioclip import AudioCLIP, preprocess_images, tokenize_labels, validate_audio
from a2i.audioclip.esresnext import AudioHeadConfig
from a2i.audioclip.fbsp import frame_count
from a2i.audioclip.preprocess import CLIP_MEAN, CLIP_STD

from .golden import read_manifest

SR = 44100


@pytest.fixture(scope="module")
def meta_thesis():
    with torch.device("meta"):
        return AudioCLIP("thesis")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return AudioCLIP("tiny")


def noise(batch: int, channels: int, seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, channels, int(seconds * SR), generator=g) * 2 - 1) * 12000


def test_thesis_state_dict_is_the_manifest(meta_thesis):
    got = {k: (tuple(v.shape), v.dtype) for k, v in meta_thesis.state_dict().items()}
    assert got == read_manifest()
    assert len(got) == 861


def test_thesis_sizes(meta_thesis):
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(meta_thesis.audio) == 32_104_771
    assert count(meta_thesis.visual) == 38_316_896
    assert count(meta_thesis) == 134_111_910
    assert meta_thesis.image_size == 224 and meta_thesis.size == "thesis"
    # QuickGELU, as the OpenAI RN50 weights were trained (plain GELU shifts text embeddings by 1e-2)
    assert type(meta_thesis.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"


def test_fbsp_frame_counts_match_reference():
    config = AudioHeadConfig()
    assert [frame_count(s * SR, config.win_length, config.hop_length) for s in (1, 4, 5)] == [77, 313, 392]


def test_unknown_size_is_rejected():
    with pytest.raises(ValueError, match="unknown AudioCLIP size 'huge'.*thesis.*tiny"):
        AudioCLIP("huge")


def test_tiny_exercises_every_code_path(tiny):
    audio = tiny.audio
    assert tiny.image_size == 64 and tiny.size == "tiny"
    for index in range(1, 5):
        block = getattr(audio, f"layer{index}")[0]
        assert block.conv2.groups > 1 and block.downsample is not None
    assert all(hasattr(audio, f"att{i}") for i in range(1, 6))
    assert audio.config.n_fft > audio.config.win_length  # frames are zero-padded to n_fft, as in thesis
    assert audio.fbsp.fc.shape == (audio.config.n_fft // 2 + 1,)


def test_tiny_shapes(tiny):
    tiny.eval()
    with torch.no_grad():
        assert tiny.encode_audio(noise(3, 1, 1.0)).shape == (3, 1024)
        assert tiny.encode_audio(noise(2, 2, 2.0)).shape == (2, 1024)
        assert tiny.encode_image(torch.randn(4, 3, 64, 64)).shape == (4, 1024)
        assert tiny.encode_text(["cello", "double bass"]).shape == (2, 1024)
        out = tiny(audio=noise(3, 1, 1.0), image=torch.randn(3, 3, 64, 64), text=["a", "b", "c"])
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "audio": (3, 1024), "image": (3, 1024), "text": (3, 1024),
        "audio_image": (3, 3), "audio_text": (3, 3), "image_text": (3, 3)}
    assert torch.allclose(out["audio"].norm(dim=-1), torch.ones(3))
    assert out["audio_text"].abs().max() <= 100.0


def test_channels_are_pooled_then_summed(tiny):
    tiny.eval()
    mono = noise(2, 1, 1.0)
    with torch.no_grad():
        pooled_mono = tiny.audio.pooled(mono)
        pooled_stereo = tiny.audio.pooled(mono.repeat(1, 2, 1))
    assert torch.allclose(pooled_stereo, 2 * pooled_mono, rtol=1e-5, atol=1e-6)


def test_log_power_is_the_reference_band_map(tiny):
    config = tiny.audio.config
    x_db = tiny.audio.log_power(torch.zeros(1, 1, SR))
    frames = frame_count(SR, config.win_length, config.hop_length)
    assert x_db.shape == (1, 1, 3, (config.n_fft // 2 + 1) // 3, frames)
    assert torch.isfinite(x_db).all()  # silence hits the 1e-18 floor, not log(0)


def test_tiny_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    tiny = AudioCLIP("tiny").train()
    with torch.no_grad():
        # open_clip zero-inits each residual branch's last BN, and exp(ln 100) sits just above the clamp at 100
        # (no gradient, as in the reference): move both off their init so every path carries a gradient
        for name, param in tiny.named_parameters():
            if name.startswith("visual.") and name.endswith("bn3.weight"):
                param.fill_(1.0)
        tiny.logit_scale_ai.fill_(math.log(50.0))
        tiny.logit_scale_at.fill_(math.log(50.0))
    out = tiny(audio=noise(3, 1, 1.0), image=torch.randn(3, 3, 64, 64), text=["cello", "flute", "oboe"])
    target = torch.arange(3)
    loss = sum(torch.nn.functional.cross_entropy(out[pair], target) for pair in ("audio_image", "audio_text",
                                                                                  "image_text"))
    (loss + tiny.audio.loss_ttf()).backward()
    missing = [n for n, p in tiny.named_parameters() if p.numel() and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert missing == []
    # the fbsp gradients are divided by their inf-norm, as in the reference
    for param in (tiny.audio.fbsp.m, tiny.audio.fbsp.fb, tiny.audio.fbsp.fc):
        assert param.grad.abs().max() == pytest.approx(1.0, abs=1e-6)


def test_loss_ttf_is_zero_for_the_dft_init_and_grows_off_it():
    head = AudioCLIP("tiny").audio
    assert head.loss_ttf().item() < 1e-10  # m=0, fb=1: unit-norm DFT basis
    with torch.no_grad():
        head.fbsp.fb.mul_(1.5)
    loss = head.loss_ttf()
    assert loss.item() > 1e-3 and loss.requires_grad


def test_eval_reuses_the_filter_bank_until_parameters_change(tiny):
    tiny.eval()
    x = noise(1, 1, 1.0)
    with torch.no_grad():
        first = tiny.encode_audio(x)
        tiny.audio.fbsp.fc.add_(0.5)
        changed = tiny.encode_audio(x)
        tiny.audio.fbsp.fc.sub_(0.5)
        restored = tiny.encode_audio(x)
    with torch.inference_mode():
        inference = tiny.encode_audio(x)
    assert not torch.allclose(first, changed)
    assert torch.allclose(first, restored, atol=1e-5)
    assert torch.equal(first, inference)


@pytest.mark.parametrize("audio, sample_rate, match", [
    (torch.zeros(1, 1, SR), 16000, "sample rate is 16000 Hz; expected 44100 Hz"),
    (torch.zeros(1, 1, SR, dtype=torch.int16), SR, "dtype is torch.int16; expected a float tensor"),
    (torch.zeros(1, SR), SR, r"shape is \(1, 44100\); expected \[batch, channels, samples\]"),
    (torch.zeros(1, 1, 0), SR, "audio is empty"),
    (torch.zeros(1, 1, int(0.2 * SR)), SR, r"audio is 0.200 s \(8820 samples\); expected at least 0.5 s"),
    (torch.full((1, 1, SR), math.nan), SR, "NaN or Inf"),
    (torch.full((1, 1, SR), math.inf), SR, "NaN or Inf"),
    (torch.full((1, 1, SR), 40000.0), SR, r"peak is 40000; expected the int16 value range"),
    (np.zeros((1, 1, SR), dtype=np.float32), SR, "must be a torch.Tensor"),
])
def test_bad_audio_is_rejected_with_what_was_expected(tiny, audio, sample_rate, match):
    with pytest.raises(ValueError, match=match):
        tiny.encode_audio(audio, sample_rate=sample_rate)


def test_unit_range_audio_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING):
        assert validate_audio(torch.rand(1, 1, SR) * 0.5).dtype == torch.float32
    assert "multiply by 32768" in caplog.text


def test_preprocess_images_follows_clip_transform():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 64, 64, 3), generator=g, dtype=torch.uint8)
    x = preprocess_images(images, 224)
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32
    # undo the normalisation and compare with PIL's bicubic resize (CLIP's transform)
    mean, std = torch.tensor(CLIP_MEAN).reshape(1, 3, 1, 1), torch.tensor(CLIP_STD).reshape(1, 3, 1, 1)
    levels = ((x * std + mean) * 255).round()
    pil = torch.stack([torch.from_numpy(np.array(Image.fromarray(i.numpy()).resize((224, 224), Image.BICUBIC)))
                       for i in images]).permute(0, 3, 1, 2).float()
    assert (levels - pil).abs().max() <= 2 and (levels - pil).abs().mean() < 0.05
    # no resize at the native size: exactly ToTensor + Normalize
    same = preprocess_images(images, 64)
    assert torch.equal(same, ((images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std))
    # non-square: shorter side to size, centre crop
    assert preprocess_images(torch.zeros(1, 64, 96, 3, dtype=torch.uint8), 64).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("height, width", [(480, 640), (640, 480), (300, 301)])
def test_preprocess_images_of_any_shape_follows_open_clips_transform(height, width):
    from open_clip.transform import image_transform

    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = (torch.stack([x, y, (x + y) / 2], dim=-1) * 255).round().to(torch.uint8)  # smooth: no aliasing
    theirs = image_transform(224, is_train=False)(Image.fromarray(image.numpy()))
    ours = preprocess_images(image[None], 224)[0]
    std = torch.tensor(CLIP_STD).reshape(3, 1, 1)
    assert ((ours - theirs) * std * 255).abs().max() <= 2  # grey levels


@pytest.mark.parametrize("images", [torch.zeros(1, 64, 64, 3), torch.zeros(1, 3, 64, 64, dtype=torch.uint8),
                                    torch.zeros(1, 0, 64, 3, dtype=torch.uint8)])
def test_preprocess_images_rejects_bad_input(images):
    with pytest.raises(ValueError, match=r"uint8 \[batch, height, width, 3\]"):
        preprocess_images(images, 64)


def test_encode_image_and_text_reject_bad_input(tiny):
    for wrong in (torch.zeros(1, 3, 224, 224), torch.zeros(1, 3, 64, 64, dtype=torch.uint8)):
        with pytest.raises(ValueError, match=r"expected float \[batch, 3, 64, 64\] \(use preprocess_images\)"):
            tiny.encode_image(wrong)
    with pytest.raises(ValueError, match="image batch holds non-finite values"):
        tiny.encode_image(torch.full((1, 3, 64, 64), float("nan")))
    with pytest.raises(ValueError, match="non-empty list of strings"):
        tiny.encode_text("cello")
    with pytest.raises(ValueError, match="77-token context"):
        tokenize_labels(["cello " * 80])


def test_window_is_scipys_periodic_blackman_harris():
    scipy_signal = pytest.importorskip("scipy.signal")
    from a2i.audioclip.fbsp import blackman_harris

    for length in (1654, 224, 7):
        expected = torch.from_numpy(scipy_signal.get_window("blackmanharris", length, fftbins=True)).float()
        assert torch.equal(blackman_harris(length), expected)


@pytest.mark.parametrize("in_channels, planes, stride", [(64, 64, 1), (256, 128, 2)])
def test_bottleneck_is_torchvisions(in_channels, planes, stride):
    # Same names, creation order (so the same seeded init) and output as torchvision's, which the reference uses.
    resnet = pytest.importorskip("torchvision.models.resnet")
    from a2i.audioclip import esresnext

    def build(module):
        torch.manual_seed(0)
        downsample = torch.nn.Sequential(module.conv1x1(in_channels, planes * 4, stride),
                                         torch.nn.BatchNorm2d(planes * 4))
        return module.Bottleneck(in_channels, planes, stride, downsample, groups=32, base_width=4).eval()

    ours, theirs = build(esresnext), build(resnet)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(value, theirs.state_dict()[key]) for key, value in ours.state_dict().items())
    x = torch.randn(2, in_channels, 16, 16)
    assert torch.equal(ours(x), theirs(x))
