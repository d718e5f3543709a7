import pytest

from a2i.variants import (Variant, checkpoint_epoch, checkpoint_name, evaluation_name, grid, parse_sample_name,
                          sample_name, samples_dir)


def test_parse_round_trip():
    for name in ("text-1s", "frozen-4s", "mutual-5s", "text-4s-nocfg", "text-4s-pca"):
        assert Variant.parse(name).name == name


def test_study_settings():
    assert Variant.parse("text-2s-pca").projection("fc") == "pca"
    assert Variant.parse("text-2s-nocfg").p_uncond(0.2) == 0.0
    assert Variant.parse("text-2s").p_uncond(0.2) == 0.2
    assert Variant.parse("text-2s-pca").embedding == "text-2s"


@pytest.mark.parametrize("name", ["text", "text-2", "audio-2s", "text-2s-foo", "text-0s"])
def test_bad_names(name):
    with pytest.raises(ValueError):
        Variant.parse(name)


def test_file_names():
    assert sample_name(10, 3.0, 0) == "epoch_010_g3_s0"
    assert evaluation_name(2, 1.5) == "epoch_002_g1.5"


def test_sample_folders_are_apart_per_stage():
    # `sample` writes the test and validation images, `sample_cfg` the CFG sweep: two DVC outputs, not nested
    assert [samples_dir("text-2s", split).as_posix() for split in ("test", "val", "cfg")] == [
        "data/samples/text-2s", "data/samples/text-2s/val", "data/samples_cfg/text-2s"]


def test_grid_lists_every_cell_then_the_study_variants():
    study = {"alignment": "text", "length": 2, "variants": ["nocfg", "pca"]}
    names = [v.name for v in grid([1, 2], ["text", "mutual"], study)]
    assert names == ["text-1s", "mutual-1s", "text-2s", "mutual-2s", "text-2s-nocfg", "text-2s-pca"]


def test_file_names_parse_back():
    assert checkpoint_epoch(checkpoint_name(70)) == 70
    assert checkpoint_epoch("epoch_070.pt.tmp") is None and checkpoint_epoch("best.pt") is None
    for epoch, guidance, seed in [(4, 3.0, 0), (70, 1.5, 2), (100, 0.0, 11)]:
        assert parse_sample_name(sample_name(epoch, guidance, seed)) == (epoch, guidance, seed)
    # only the names sample_name writes: not another spelling of the same numbers, not a near miss
    assert parse_sample_name("epoch_004_g3.0_s0") is None
    assert parse_sample_name("epoch_004_g3_s0_extra") is None
    assert parse_sample_name("epoch_004_g1e+-3_s0") is None
