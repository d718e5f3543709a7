"""Numerical equivalence with the reference AudioCLIP (fixtures: tests/fixtures/audioclip/golden_seed1234.json).

Tolerances from the fixtures' README: rel L2 and max-rel < 1e-4 on every embedding, |logit error| <= 2e-4 *
scale; the fbsp bank follows the reference's float32 operation order, so the hypersensitive tone, chirp and
silence inputs (a, b, c) hold to the same bound as the noise input (f).
"""

import pytest
import torch

from a2i.audioclip import preprocess_images, tokenize_labels

from .golden import audio_inputs, fill_state_dict, golden, image_raw, max_rel, rel_l2, state_dict_digest, \
    tensor_sha256, thesis_model

AUDIO = ("audio_a", "audio_b", "audio_c", "audio_f")
TOL = 1e-4


@pytest.fixture(scope="module")
def model():
    model = thesis_model()
    filled = fill_state_dict(model.state_dict(), golden()["seed"])
    assert state_dict_digest(filled) == golden()["fill"]["digest_sha256_all"]
    model.load_state_dict(filled, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def embeddings(model):
    inputs = audio_inputs()
    image = preprocess_images(image_raw().permute(1, 2, 0)[None], 224)
    with torch.no_grad():
        out = {name: model.encode_audio(inputs[name]) for name in AUDIO}
        out["image_d"] = model.encode_image(image)
        out["text_e"] = model.encode_text(golden()["labels"])
        out["pooled_audio_a"] = model.audio.pooled(inputs["audio_a"])
        out["pooled_audio_f"] = model.audio.pooled(inputs["audio_f"])
        out["conv1_audio_f"] = model.audio.log_power(inputs["audio_f"])[:, 0]
    return out


def test_inputs_are_the_fixture_inputs():
    inputs = audio_inputs()
    for name in AUDIO:
        assert tensor_sha256(inputs[name]) == golden()["inputs"][name]["sha256_float32_le"], name
    assert tensor_sha256(image_raw()) == golden()["inputs"]["image_d"]["raw_u8_sha256"]
    # preprocess_images without a resize is exactly ToTensor + Normalize
    image = preprocess_images(image_raw().permute(1, 2, 0)[None], 224)
    assert tensor_sha256(image) == golden()["inputs"]["image_d"]["sha256_float32_le"]


def test_tokens_match_reference():
    assert torch.equal(tokenize_labels(golden()["labels"]), torch.tensor(golden()["tokens"]))


@pytest.mark.parametrize("name", [*AUDIO, "image_d", "text_e"])
def test_embedding_matches_reference(embeddings, name):
    ref = torch.tensor(golden()["embeddings"][name])
    got = embeddings[name]
    assert got.shape == ref.shape
    assert rel_l2(got, ref) < TOL and max_rel(got, ref) < TOL, (rel_l2(got, ref), max_rel(got, ref))
    assert torch.nn.functional.cosine_similarity(got.double(), ref.double()).min() > 0.9999999


def test_intermediates_match_reference(embeddings):
    for name in ("audio_a", "audio_f"):
        ref = torch.tensor(golden()["pooled_pre_fc"][name])
        assert max_rel(embeddings[f"pooled_{name}"], ref) < TOL, name
    stats = golden()["audio_f_conv1_input"]
    x_db = embeddings["conv1_audio_f"].double()
    assert list(x_db.shape) == stats["shape"]
    assert abs(x_db.mean() - stats["mean"]) < 1e-3 and abs(x_db.std() - stats["std"]) < 1e-3
    assert abs(x_db.min() - stats["min"]) < 0.05 and abs(x_db.max() - stats["max"]) < 0.05


def test_logits_match_reference(model, embeddings):
    ref = golden()["logits"]
    with torch.no_grad():
        scales = model.logit_scales()
    for pair, key in (("audio_image", "scale_ai"), ("audio_text", "scale_at"), ("image_text", "scale_it")):
        assert float(scales[pair]) == pytest.approx(ref[key], rel=1e-6)
    audio = torch.nn.functional.normalize(torch.cat([embeddings[name] for name in AUDIO]), dim=-1)
    image = torch.nn.functional.normalize(embeddings["image_d"], dim=-1)
    text = torch.nn.functional.normalize(embeddings["text_e"], dim=-1)
    got = {"audio_image": audio @ image.T, "audio_text": audio @ text.T, "image_text": image @ text.T}
    for pair, logits in got.items():
        scale = scales[pair]
        assert (scale * logits - torch.tensor(ref[pair])).abs().max() <= 2e-4 * scale, pair
