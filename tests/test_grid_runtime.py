import pytest

from a2i.grid_runtime import Grid, hardware_limit_hours, peak_bf16_tflops, projected_hours, thesis_grid, utilisation

SIZES = {length: {"train": 1000 * length, "test": 100 * length} for length in range(1, 6)}


def test_the_thesis_grid_is_fifteen_cells_and_three_studies():
    # 5 lengths x 3 alignments, plus nocfg, pca and nonorm at 4 s: 100 epochs each, sampled at 10 checkpoints on
    # the test split (the 15 cells also on 20 validation conditions per instrument), and the 4 s text cell on the
    # test split at 5 more CFG scales once.
    work = thesis_grid(SIZES)
    assert work.models == 18
    assert work.train_images == 100 * (3 * 1000 * (1 + 2 + 3 + 4 + 5) + 3 * 4000)
    assert work.sampled_images == 10 * (3 * 100 * (1 + 2 + 3 + 4 + 5) + 3 * 400 + 15 * 20 * 13) + 5 * 400
    # Drawn at guidance 1, at half the cost: the CFG control at its 10 checkpoints and the sweep's s = 1.
    assert work.unguided_images == 10 * 400 + 400
    assert work.guided_equivalent == work.sampled_images - (10 * 400 + 400) / 2


def test_unguided_images_cost_half_a_guided_one():
    work = Grid(models=1, train_images=3_600_000, sampled_images=36_000, unguided_images=36_000)
    assert projected_hours(work, {"train": 1000.0, "sample": 5.0, "evaluate": 100.0})["sample"] == pytest.approx(1.0)
    limit = hardware_limit_hours(work, {"train": 1e12, "sample": 1e14}, peak_tflops=1000.0)
    assert limit["sample"] == pytest.approx(0.5)


def test_projected_hours_are_images_over_rates():
    work = Grid(models=2, train_images=3_600_000, sampled_images=36_000)
    hours = projected_hours(work, {"train": 1000.0, "sample": 10.0, "evaluate": 100.0})
    assert hours == pytest.approx({"train": 1.0, "sample": 1.0, "evaluate": 0.1, "total": 2.1})


def test_the_hardware_limit_and_utilisation_use_the_bf16_peak():
    work = Grid(models=1, train_images=3_600_000, sampled_images=3_600)
    limit = hardware_limit_hours(work, {"train": 1e12, "sample": 1e15}, peak_tflops=1000.0)
    assert limit == pytest.approx({"train": 1.0, "sample": 1.0, "total": 2.0})
    assert utilisation(500.0, 1e12, 1000.0) == pytest.approx(0.5)
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == peak_bf16_tflops("NVIDIA H200") == 989.0
    assert peak_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312.0 and peak_bf16_tflops("Tesla T4") is None
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0 and peak_bf16_tflops("NVIDIA H200 NVL") == 835.0


def test_bad_rates_and_sizes_are_one_line_errors():
    work = Grid(models=1, train_images=1, sampled_images=1)
    with pytest.raises(ValueError, match=r"^rates\['sample'\] must be a number > 0, got 0"):
        projected_hours(work, {"train": 1.0, "sample": 0, "evaluate": 1.0})
    with pytest.raises(ValueError, match=r"^peak_tflops must be a number > 0"):
        hardware_limit_hours(work, {"train": 1.0, "sample": 1.0}, 0)
    with pytest.raises(ValueError, match=r"^split_sizes has no lengths \[5\]"):
        thesis_grid({length: SIZES[length] for length in range(1, 5)})
