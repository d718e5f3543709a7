"""params.yaml is what `dvc exp run` would compose from conf/ (dvc repro never recomposes)."""

import pytest

from a2i import params


def test_committed_params_equal_composition_of_conf():
    assert params.committed() == params.compose()


def test_profiles_and_groups_compose():
    thesis = params.compose(overrides=["profile=thesis", "data=suburmp", "projection=pca"])
    assert thesis["lengths"] == [1, 2, 3, 4, 5]
    assert thesis["train"]["profile"] == "thesis" and thesis["train"]["projection"] == "pca"
    assert thesis["prepare"]["raw"].startswith("data/download/")
    assert thesis["prepare"]["lengths"] == thesis["lengths"]  # interpolations resolved as dvc does


def test_every_stage_has_its_own_section():
    composed = params.compose()
    for stage in ("synthesize", "download", "prepare", "finetune", "embed", "train", "sample", "classify",
                  "evaluate", "report"):
        assert isinstance(composed[stage], dict), stage


def test_missing_section_is_a_one_line_error(tmp_path):
    (tmp_path / "params.yaml").write_text("train: {epochs: 1}\n")
    with pytest.raises(SystemExit, match="has no section 'sample'"):
        params.load_section("sample", tmp_path / "params.yaml")
