import math

import pytest
import torch

from a2i.diffusion.schedule import Schedule
from a2i.diffusion.unet import AXIS_GRID, SIZES, Attention, PCAProjection, UNet, portable_axes, timestep_embedding


def test_the_default_is_the_thesis_network():
    model = UNet()
    assert model.config["size"] == "thesis"
    assert SIZES["thesis"].widths == (64, 128, 256, 256)
    # Capelle's UNet_conditional with the two-DoubleConv bottleneck has 15.9 M parameters with the encoding
    # layer; the six cross-attention blocks add about 1 M.
    assert 16.5e6 < sum(p.numel() for p in model.parameters()) < 17.5e6
    assert all(block is not None for block in (*model.down_attn, *model.up_attn))
    # thesis 3.3.2: the encoding layer on the raw embedding (Linear, LeakyReLU, Dropout, LayerNorm), the
    # cross-attention on the projected condition itself, a final convolution predicting the noise
    assert [type(layer).__name__ for layer in model.project] == ["Linear", "LeakyReLU", "Dropout", "LayerNorm"]
    assert isinstance(model.to_context, torch.nn.Identity) and not model.output_skip
    assert model.config["context_tokens"] == 1


def test_a_silent_network_predicts_zero_noise_without_the_output_skip():
    model = UNet("tiny").eval()
    torch.nn.init.zeros_(model.outc.weight)
    torch.nn.init.zeros_(model.outc.bias)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), torch.tensor([10, 999]), torch.randn(2, 1024))
    assert torch.equal(out, torch.zeros_like(out))


def test_the_nonorm_encoding_layer_has_no_dropout_or_layernorm():
    names = [type(layer).__name__ for layer in UNet("tiny", encoding_norm=False, standardize=True).project]
    assert names == ["Standardize", "Linear", "LeakyReLU"]


@pytest.mark.parametrize("profile", ["thesis", "tiny"])
def test_forward_shape_and_dtype(profile):
    torch.manual_seed(0)
    model = UNet(profile).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 999]), torch.randn(2, 1024))
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_image_size_sets_the_input_and_where_attention_sits():
    # tiny: attention only on feature maps of side <= 8; at 64x64 that is the last down block, at 32x32 also
    # the one before it and the first up block
    at = lambda model: [b is not None for b in (*model.down_attn, *model.up_attn)]  # noqa: E731
    assert at(UNet("tiny")) == [False, False, True, False, False, False]
    small = UNet("tiny", image_size=32).eval()
    assert at(small) == [False, True, True, True, False, False] and small.image_size == 32
    with torch.no_grad():
        assert small(torch.randn(2, 3, 32, 32), torch.tensor([0, 999]), torch.randn(2, 1024)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="must be a positive multiple of 8"):
        UNet("tiny", image_size=36)


def test_condition_and_timestep_change_the_prediction():
    torch.manual_seed(0)
    model = UNet("tiny").eval()
    for p in model.outc.parameters():  # a fresh 1x1 conv is near zero; make the U-Net's part visible
        torch.nn.init.normal_(p)
    x, t, cond = torch.randn(1, 3, 64, 64), torch.tensor([500]), torch.randn(1, 1024)
    with torch.no_grad():
        base = model(x, t, cond)
        assert not torch.allclose(base, model(x, t, torch.zeros_like(cond)))
        assert not torch.allclose(base, model(x, torch.tensor([100]), cond))


def test_noise_skip_makes_eps_sqrt_one_minus_abar_times_x_when_the_network_is_silent():
    model = UNet("tiny", output_skip=True).eval()
    torch.nn.init.zeros_(model.outc.weight)
    torch.nn.init.zeros_(model.outc.bias)
    x, t = torch.randn(2, 3, 64, 64), torch.tensor([10, 999])
    abar = Schedule().alphas_cumprod()[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, torch.randn(2, 1024)), (1 - abar).sqrt() * x)


def test_timestep_embedding_is_sin_then_cos():
    emb = timestep_embedding(torch.tensor([0, 7]), dim=8)
    assert emb.shape == (2, 8)
    freqs = torch.tensor([10000 ** (-i / 8) for i in range(0, 8, 2)])
    torch.testing.assert_close(emb[1], torch.cat([torch.sin(7 * freqs), torch.cos(7 * freqs)]))
    torch.testing.assert_close(emb[0], torch.cat([torch.zeros(4), torch.ones(4)]))


def test_attention_matches_the_softmax_formula():
    torch.manual_seed(0)
    attn = Attention(dim=8, heads=2, context_dim=6)
    x, context = torch.randn(3, 5, 8), torch.randn(3, 4, 6)
    q = attn.q(x).view(3, 5, 2, 4).transpose(1, 2)
    k, v = attn.kv(context).view(3, 4, 2, 2, 4).unbind(2)
    k, v = k.transpose(1, 2), v.transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)
    expected = attn.out((weights @ v).transpose(1, 2).reshape(3, 5, 8))
    torch.testing.assert_close(attn(x, context), expected)


def test_pca_projection_recovers_the_principal_axes_scaled_to_unit_rms():
    torch.manual_seed(0)
    n, dims = 2000, 1024
    scales = torch.zeros(dims)
    scales[[5, 17, 300]] = torch.tensor([10.0, 5.0, 2.0])
    embeddings = torch.randn(n, dims) * (scales + 1e-3) + 3.0
    pca = PCAProjection(components=256, scale=True)
    pca.fit(embeddings)
    assert bool(pca.fitted)
    top = pca.basis[:, :3].abs().argmax(0)
    assert top.tolist() == [5, 17, 300]
    projected = pca(embeddings)
    assert projected.shape == (n, 256)
    assert projected.mean(0).abs().max() < 1e-3  # centred on the training mean
    assert abs(float(projected.pow(2).mean().sqrt()) - 1.0) < 0.02
    # relative variances kept (no whitening): first axis has twice the spread of the second
    assert 1.8 < float(projected[:, 0].std() / projected[:, 1].std()) < 2.2
    # the thesis' PCA is not rescaled: the projected spread is the embeddings' own (thesis 5.4)
    raw = PCAProjection(components=256, scale=False)
    raw.fit(embeddings)
    assert 9.5 < float(raw(embeddings)[:, 0].std()) < 10.5


def test_portable_axes_are_the_same_numbers_whatever_sign_and_last_bits_the_eigensolver_gave():
    generator = torch.Generator().manual_seed(0)
    vectors = torch.linalg.qr(torch.randn(64, 64, generator=generator, dtype=torch.float64))[0]
    axes = portable_axes(vectors)
    signs = torch.where(torch.arange(64) % 2 == 0, 1.0, -1.0).double()
    other_solver = vectors * signs * (1 + 1e-13 * torch.randn(64, 64, generator=generator, dtype=torch.float64))
    assert torch.equal(portable_axes(other_solver), axes)
    largest = axes.abs().argmax(0)
    assert bool((axes[largest, torch.arange(64)] > 0).all())
    assert torch.equal(torch.round(axes / AXIS_GRID) * AXIS_GRID, axes)  # on the grid
    torch.testing.assert_close(axes.abs(), vectors.abs(), rtol=0, atol=AXIS_GRID / 2)


def test_pca_unet_round_trips_its_fitted_basis_through_the_state_dict():
    torch.manual_seed(0)
    model = UNet("tiny", projection="pca")
    model.fit_condition(torch.randn(300, 1024))
    clone = UNet("tiny", projection="pca")
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone.project.basis, model.project.basis)


def test_fc_input_is_standardised_with_the_fitted_statistics_and_saved_with_the_model():
    torch.manual_seed(0)
    embeddings = torch.randn(500, 1024) * 0.5 + 3.0  # a dominant common direction, as raw AudioCLIP embeddings
    model = UNet("tiny", standardize=True)
    model.fit_condition(embeddings)
    standardized = model.project[0](embeddings)
    assert standardized.mean(0).abs().max() < 1e-4
    assert abs(float(standardized.pow(2).mean().sqrt()) - 1.0) < 1e-3
    clone = UNet("tiny", standardize=True)
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone.project[0](embeddings), standardized)


@pytest.mark.parametrize("kwargs, message", [
    ({"size": "huge"}, "unknown U-Net size"),
    ({"projection": "svd"}, "projection must be"),
    ({"projection": "pca", "pca_components": 128}, "pca_components must be 256"),
    ({"context_tokens": 0}, "context_tokens must be >= 1"),
])
def test_bad_configuration_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)
