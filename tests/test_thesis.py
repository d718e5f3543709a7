"""The thesis profile is the thesis: `profile=thesis` composes to exactly the table of a2i/thesis.py, every
departure is a named parameter, and a run that would silently leave the recipe fails at the stage's start."""

from __future__ import annotations

import pytest

from a2i import params, thesis
from a2i.config import SECTIONS, FinetuneConfig
from a2i.evaluation.evaluate import feature_space

THESIS = ["profile=thesis", "data=suburmp"]


def test_the_thesis_profile_composes_to_the_thesis_table():
    composed = thesis.flatten(params.compose(overrides=THESIS))
    for entry in thesis.RECIPE:
        assert entry.key in composed, entry.key
        assert thesis._same(composed[entry.key], entry.value), (
            f"{entry.key}: the thesis profile has {composed[entry.key]!r}, the thesis {entry.value!r} "
            f"({entry.section})")
    assert thesis.departures(params.compose(overrides=THESIS)) == []


def test_every_key_the_thesis_profile_composes_to_is_pinned_or_named_otherwise():
    operational = {f"{section.NAME}.{key}" for section in SECTIONS for key in section.OPERATIONAL}
    named = {entry.key for entry in thesis.RECIPE} | set(thesis.UNPINNED) | operational
    loose = [key for key in thesis.flatten(params.compose(overrides=THESIS))
             if key not in named and not thesis.not_recipe(key)
             and not any(key.startswith(f"{unpinned}.") for unpinned in thesis.UNPINNED)]
    assert loose == []


def test_every_table_entry_names_its_section_and_every_method_departure_says_why():
    keys = [entry.key for entry in thesis.RECIPE]
    assert len(keys) == len(set(keys))
    for entry in thesis.RECIPE:
        assert entry.section and entry.kind in ("size", "method", "addition"), entry.key
    switches = ("train.output_skip", "train.context_tokens", "train.standardize", "train.pca_scale", "train.ema",
                "train.loss_weighting", "sample.sampler", "sample.steps", "classify.noise_std", "classify.augment",
                "classify.lr_schedule", "finetune.allow_random_init", "evaluate.allow_fid_classifier", "study.epoch")
    assert set(switches) <= set(keys)


def test_the_cpu_demo_lists_its_departures():
    found = {d.key: d for d in thesis.departures(params.compose())}
    for key in ("train.output_skip", "train.context_tokens", "train.standardize", "train.pca_scale",
                "train.loss_weighting", "sample.sampler", "classify.noise_std", "evaluate.allow_fid_classifier"):
        assert found[key].kind == "method" and found[key].why, key
    assert found["prepare.image_size"].thesis == 64 and found["prepare.image_size"].ours == 32
    assert "train.p_uncond" not in found and "sample.guidance" not in found


def test_a_changed_value_is_a_departure_and_equal_numbers_are_not():
    composed = params.compose(overrides=[*THESIS, "train.p_uncond=0.1", "train.lr=3e-4"])
    assert [(d.key, d.thesis, d.ours) for d in thesis.departures(composed)] == [("train.p_uncond", 0.2, 0.1)]
    assert thesis._same(1, 1.0) and not thesis._same(True, 1) and thesis._same([1, 2], (1, 2))


def test_the_thesis_profile_without_the_released_weights_fails_before_any_work():
    section = params.compose(overrides=["profile=thesis"])["finetune"]  # synthetic data: nothing downloaded
    with pytest.raises(ValueError, match=r"finetune.checkpoint is null: .*`audioclip` to download.items.*"
                                         r"finetune.allow_random_init=true"):
        FinetuneConfig.from_params(section)
    FinetuneConfig.from_params({**section, "allow_random_init": True})  # the named opt-out


def test_no_inception_weights_is_an_error_unless_fid_classifier_is_allowed(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no pytorch-fid cache either
    with pytest.raises(ValueError, match=r"evaluate.fid_weights=None: no Inception weights .*`inception` to "
                                         r"download.items.*evaluate.allow_fid_classifier=true"):
        feature_space(None, None, tmp_path / "classifier.pt", 8, "cpu", allow_fid_classifier=False)


def test_real_data_downloads_what_the_thesis_recipe_needs():
    composed = params.compose(overrides=THESIS)
    assert composed["download"]["items"] == ["suburmp", "audioclip", "inception"]
    assert composed["finetune"]["checkpoint"] == thesis.AUDIOCLIP_CHECKPOINT
    assert composed["evaluate"]["fid_weights"] == thesis.INCEPTION_WEIGHTS
    # where `download` puts each item: in its own folder, a DVC output of its own
    for name, path in (("audioclip", thesis.AUDIOCLIP_CHECKPOINT), ("inception", thesis.INCEPTION_WEIGHTS)):
        assert path == f"data/download/{name}/{composed['download'][name]['url'].rsplit('/', 1)[1]}"
