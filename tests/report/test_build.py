"""The report rebuilds the thesis' tables from metrics files laid out as the pipeline writes them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from a2i import params, variants
from a2i.data.layout import INSTRUMENTS
from a2i.evaluation.evaluate import write_confusion
from a2i.io import save_npz, write_json
from a2i.report import figures, tables
from a2i.report.build import build_report

EPOCHS = (2, 4)


def _evaluation(variant: str, epoch: int, guidance: float, adherence: float, split: str = "test") -> dict:
    parsed = variants.Variant.parse(variant)
    row = {"variant": variant, "split": split, "alignment": parsed.alignment, "length_s": parsed.length,
           "study": parsed.study or "", "epoch": epoch, "guidance": guidance, "n_seeds": 1, "n_images": 26,
           "adherence": adherence,
           "adherence_sd": None, "adherence_ci_low": adherence - 0.05, "adherence_ci_high": adherence + 0.05,
           "feature_extractor": "classifier_penultimate",
           "fid_classifier_train": 10 - adherence, "fid_classifier_test": 12 - adherence,
           "fid_classifier_train_ci_low": 9 - adherence, "fid_classifier_train_ci_high": 11 - adherence,
           "fid_classifier_test_ci_low": 11 - adherence, "fid_classifier_test_ci_high": 13 - adherence}
    return row | {f"acc_{name}": adherence for name in INSTRUMENTS}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """metrics/, plots/, data/ of a tiny run (2 lengths x 3 alignments, the CFG, PCA and nonorm studies)."""
    tmp_path = tmp_path_factory.mktemp("run")
    prepared = tmp_path / "data" / "prepared"
    labels = np.repeat(np.arange(13), 2)
    images = np.zeros((26, 64, 64, 3), np.uint8)
    prepared.mkdir(parents=True)
    np.save(prepared / "images.npy", images)
    counts = [{"instrument": i, "split": s, "length_s": l, "samples": 5}
              for i in INSTRUMENTS for s, l in (("original_train", 0.5), ("original_validation", 0.5),
                                                ("train", 1), ("val", 1), ("test", 1), ("train", 2), ("val", 2),
                                                ("test", 2))]
    pd.DataFrame(counts).to_csv(prepared / "counts.csv", index=False)
    # two performances per instrument of 3 s, one frame each
    names = [f"{name}0{n}" for name in INSTRUMENTS for n in (0, 1)]
    seconds = 3 * 44100
    pd.DataFrame({"performance": names, "instrument": np.repeat(INSTRUMENTS, 2), "label": labels,
                  "offset": np.arange(26) * seconds, "samples": seconds}).to_csv(prepared / "performances.csv",
                                                                                 index=False)
    pd.DataFrame({"image": np.arange(26), "performance": names, "label": labels, "t_ms": 1500}).to_csv(
        prepared / "images.csv", index=False)
    np.save(prepared / "tracks.npy", np.random.default_rng(0).integers(-3000, 3000, 26 * seconds).astype(np.int16))
    for length in (1, 2):
        for split in ("train", "test"):
            pd.DataFrame({"image": np.arange(26), "label": labels}).to_csv(
                prepared / f"index_{length}s_{split}.csv", index=False)
    for length in (1, 2):
        for alignment in ("text", "frozen", "mutual"):
            write_json(tmp_path / f"metrics/finetune/{alignment}-{length}s.json",
                       {"alignment": alignment, "length_s": length, "pretrained": False,
                        "query_acc_epoch0": 0.1, "query_acc_epoch1": 0.9, "query_acc_epoch2": 0.95})
    write_json(tmp_path / "metrics/classifier.json", {"test_accuracy": 1.0, "val_accuracy": 1.0})
    write_json(tmp_path / "metrics/classifier_hr.json", {"test_accuracy": 0.985, "val_accuracy": 1.0})
    settings = [(f"{a}-{l}s", e, 3.0, 0.5 + 0.1 * l + 0.01 * e) for a in ("text", "frozen", "mutual")
                for l in (1, 2) for e in EPOCHS]
    settings += [("text-2s-nocfg", 4, 1.0, 0.55)]
    settings += [(f"text-2s-{study}", e, 3.0, 0.4) for study in ("pca", "nonorm") for e in EPOCHS]
    sweep = [("text-2s", 4, g, 0.6) for g in (1.0, 5.0)]  # the sample_cfg and evaluate_cfg stages'
    predicted = labels.copy()
    predicted[[12, 13, 10]] = [4, 4, 9]  # oboe -> flute (both), horn -> trumpet (one of two)
    for (variant, epoch, guidance, adherence), cfg in [(s, False) for s in settings] + [(s, True) for s in sweep]:
        name = variants.evaluation_name(epoch, guidance)
        write_json(tmp_path / f"metrics/evaluate{'_cfg' * cfg}/{variant}/{name}.json",
                   _evaluation(variant, epoch, guidance, adherence))
        write_confusion(tmp_path / f"plots/confusion{'_cfg' * cfg}/{variant}/{name}.csv",
                        tmp_path / f"plots/confusion{'_cfg' * cfg}/{variant}/{name}.png", labels, predicted, variant)
        folder = variants.samples_dir(variant, "cfg" if cfg else "test")
        save_npz(tmp_path / folder / f"{variants.sample_name(epoch, guidance, 0)}.npz",
                 images=images, labels=labels, rows=np.arange(26))
    # Validation adherence of the main grid: text-1s at epoch 2 is the best there, not the best on test.
    for variant, epoch, guidance, _ in settings[:12]:
        name = variants.evaluation_name(epoch, guidance)
        val = 0.9 if (variant, epoch) == ("text-1s", 2) else 0.3
        write_json(tmp_path / f"metrics/evaluate/{variant}/val/{name}.json",
                   _evaluation(variant, epoch, guidance, val, split="val"))
    # The super-resolution stages upsampled the selected checkpoint's images (text-1s, epoch 2) to 128x128.
    np.save(prepared / "images_hr.npy", np.zeros((26, 128, 128, 3), np.uint8))
    for method, adherence in (("bicubic", 0.5), ("diffusion", 0.6)):
        save_npz(tmp_path / variants.upsampled_dir(method) / f"{variants.sample_name(2, 3.0, 0)}.npz",
                 images=np.zeros((26, 128, 128, 3), np.uint8), labels=labels, rows=np.arange(26))
        write_json(tmp_path / f"metrics/evaluate_sr/{method}.json",
                   _evaluation("text-1s", 2, 3.0, adherence) | {"method": method, "resolution": 128})
    return tmp_path


STUDY = {"alignment": "text", "length": 2, "variants": ["nocfg", "pca"]}
DEFAULT_PARAMS = params.compose()  # the CPU demo's (composed here, in the repository)
GRID = variants.grid([1, 2], ["text", "frozen", "mutual"], STUDY)


def _build(run_dir, grid=GRID, out="report"):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(run_dir)  # samples are found where the pipeline puts them: data/samples/<variant>
        return build_report(out=run_dir / out, metrics_dir=run_dir / "metrics", plots_dir=run_dir / "plots/confusion",
                            prepared=run_dir / "data/prepared", grid=grid, guidance=3.0, cfg_sweep="text-2s",
                            study_epoch=None, dataset="synthetic", params=DEFAULT_PARAMS)


@pytest.fixture(scope="module")
def result(run_dir):
    return _build(run_dir)


def test_report_files_and_summary(run_dir, result):
    # Selected on validation: text-1s at epoch 2 (test adherence 0.62), not the best on test.
    assert result["selected_on"] == "val" and result["best_val_adherence"] == pytest.approx(0.9)
    assert result["best_variant"] == "text-1s" and result["best_epoch"] == 2
    assert result["best_adherence"] == pytest.approx(0.62) and result["fid_metric"] == "fid_classifier_test"
    # The thesis-style best on test beside it: three alignments tie at 0.74 (2 s, epoch 4), the first wins.
    assert result["best_on_test_variant"] == "frozen-2s" and result["best_on_test_adherence"] == pytest.approx(0.74)
    assert json.loads((run_dir / "metrics/summary.json").read_text()) == result
    report = run_dir / "report"
    for name in ("4_1", "5_1", "5_2", "5_4", "5_5", "5_6", "5_7", "5_8", "5_9"):
        assert (report / f"table_{name}.csv").is_file() and (report / f"table_{name}.md").is_file(), name
    for name in ("5_1_query_accuracy", "5_2_adherence", "5_3_confusion", "5_5_fid", "5_6_cfg", "5_8_cfg_per_class"):
        assert (report / f"figure_{name}.png").stat().st_size > 1000, name
    readme = (report / "README.md").read_text()
    assert "Different dataset" in readme and "not** FID" in readme


def test_the_dataset_section_shows_every_performance_and_spectrograms(run_dir, result):
    report = run_dir / "report"
    assert (report / "dataset_frames.png").stat().st_size > 1000
    assert (report / "dataset_spectrograms.png").stat().st_size > 1000
    readme = (report / "README.md").read_text()
    assert "## The dataset" in readme and "Nothing is added that a real recording lacks" in readme


def test_the_upsampled_rows_of_table_5_3_and_their_figure(run_dir, result):
    table = pd.read_csv(run_dir / "report/table_5_3_superres.csv")
    assert table["Method"].tolist() == ["Ours (text-1s, epoch 2)", "Ours + bicubic upsampling",
                                        "Ours + diffusion upsampling"]
    assert table["Resolution"].tolist() == ["64x64", "128x128", "128x128"]
    assert table["Adherence (95% CI)"].tolist() == ["0.620 (0.570-0.670)", "0.500 (0.450-0.550)",
                                                    "0.600 (0.550-0.650)"]
    assert (run_dir / "report/figure_superres.png").stat().st_size > 1000
    assert "(test accuracy on the real crops: 1.000 at 64, 0.985 at 128)" in (run_dir / "report/README.md").read_text()
    assert result["upsampling"]["diffusion"]["adherence"] == pytest.approx(0.6)
    assert result["upsampling"]["bicubic"]["fid_classifier_test"] == pytest.approx(11.5)


def test_upsampling_metrics_of_another_checkpoint_are_a_clear_error(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    write_json(copy / "metrics/evaluate_sr/bicubic.json",
               _evaluation("text-2s", 4, 3.0, 0.5) | {"method": "bicubic", "resolution": 128})
    (copy / "other").mkdir()
    (copy / "other" / "README.md").write_text("the previous report")
    summary = copy / "metrics/summary.json"
    before = summary.read_bytes() if summary.exists() else None
    with pytest.raises(ValueError, match="scores text-2s epoch 4, not the selected checkpoint text-1s epoch 2"):
        _build(copy, out="other")
    # Found after half the tables were drawn: none of them replaces the previous report, nor its summary.
    assert [p.name for p in (copy / "other").iterdir()] == ["README.md"]
    assert (copy / "other" / "README.md").read_text() == "the previous report"
    assert not any(p.name.startswith(".other") for p in copy.iterdir())
    assert (summary.read_bytes() if summary.exists() else None) == before


def test_tables_follow_the_thesis_layout(run_dir, result):
    table_5_2 = pd.read_csv(run_dir / "report/table_5_2.csv")
    assert list(table_5_2.columns) == ["Time", "Alignment", "2", "4"]
    assert table_5_2["Alignment"].tolist() == ["Frozen", "Frozen", "Mutual", "Mutual", "Text", "Text"]
    assert table_5_2.iloc[-1]["4"] == "74.00%"  # text, 2 s, epoch 4
    table_5_7 = pd.read_csv(run_dir / "report/table_5_7.csv")
    assert list(table_5_7.columns) == ["CFG Scale", "None", "1", "3", "5"]
    table_5_9 = pd.read_csv(run_dir / "report/table_5_9.csv")
    assert table_5_9["Projection"].tolist() == ["PCA", "Fully Connected"]
    table_4_1 = pd.read_csv(run_dir / "report/table_4_1.csv")
    assert table_4_1.shape == (13, 3 + 2 * 3) and table_4_1["Original Train"].eq(5).all()
    published = tables.published("table_5_2")
    assert published.shape == (15, 12)


def test_a_smaller_grid_leaves_out_the_metrics_of_an_earlier_larger_run(run_dir, result):
    # `dvc exp run -S 'lengths=[1]'` after the two-length run: the 2 s metrics files are still there.
    one_length = variants.grid([1], ["text", "frozen", "mutual"], {**STUDY, "length": 1, "variants": []})
    small = _build(run_dir, grid=one_length, out="report_1s")
    assert small["best_variant"] == "text-1s" and small["best_adherence"] == pytest.approx(0.62)
    assert small["best_on_test_variant"] == "frozen-1s" and small["best_on_test_adherence"] == pytest.approx(0.64)
    table_5_1 = pd.read_csv(run_dir / "report_1s/table_5_1.csv")
    assert len(table_5_1) == len(pd.read_csv(run_dir / "report/table_5_1.csv")) // 2
    assert json.loads((run_dir / "metrics/summary.json").read_text()) == small
    readme = (run_dir / "report_1s/README.md").read_text()  # the studies' text-2s is not in the 1 s grid
    assert "Not in this run (no samples of text-2s above guidance 3)." in readme
    assert "Not in this run (no samples of text-2s at guidance 3)." in readme
    _build(run_dir)  # the module's other tests read the full run's summary


def test_a_grid_variant_without_metrics_is_a_clear_error(run_dir, result):
    with pytest.raises(ValueError, match=r"metrics/finetune has no metrics for text-3s: run their stages first"):
        _build(run_dir, grid=variants.grid([2, 3], ["text"], {**STUDY, "variants": []}), out="report_missing")
    assert not (run_dir / "report_missing").exists()


def test_thesis_extras_tables_and_footnote(run_dir, result):
    report = run_dir / "report"
    table_5_3 = pd.read_csv(report / "table_5_3.csv", keep_default_na=False)
    # Best test fid_classifier_test of the main grid: 12 - 0.74 at 2 s, epoch 4 (frozen-2s first in variant order).
    assert table_5_3["Method"].tolist() == ["S2I-C", "CMCGAN", "CMCRL + SAGAN", "Ours (frozen-2s, epoch 4)"]
    assert table_5_3["Resolution"].tolist() == ["64x64", "", "256x256", "64x64"]
    # The peers' published FIDs and our fid_classifier are other metrics: never one column.
    assert table_5_3["FID"].tolist() == ["252.66", "215.92", "107.26", ""]
    assert table_5_3["fid_classifier"].tolist() == ["", "", "", "11.26"]
    readme = (report / "README.md").read_text()
    assert "not FID, not comparable" in readme
    assert "Table 5.4: 13 of 15 rows; Table 5.5: 13 of 15 rows" in readme
    ours = pd.read_csv(report / "statistics.csv")["Ours"].tolist()
    # Two lengths only: the text rows have two points, the rows over several models two distinct lengths.
    assert ours[:5] == ["n/a (n < 3)", "n/a (fewer than 3 distinct x)", "n/a (n < 3)",
                        "n/a (fewer than 3 distinct x)", "n/a (fewer than 3 distinct x)"]
    assert ours[5] == "n/a (n < 3)"  # s = 5 is the only swept scale above 1
    assert ours[6].startswith("2.00 +- 0.00 (n = 12)")  # fid_classifier test - train is 2 everywhere


def test_thesis_extras_figures(run_dir, result):
    report = run_dir / "report"
    for name in ("5_4_poorly_aligned", "5_7_large_cfg", "5_9_pca_brightness"):
        assert (report / f"figure_{name}.png").stat().st_size > 1000, name
    readme = (report / "README.md").read_text()
    # Figures 5.3 and 5.4 show the thesis' "best performing model", the best on test (frozen-2s, epoch 4), not
    # the checkpoint validation selects for the headline (text-1s, epoch 2).
    assert "Top confusions of frozen-2s epoch_004_g3: oboe -> flute 1.00, horn -> trumpet 0.50" in readme
    confusion = run_dir / "plots/confusion/frozen-2s/epoch_004_g3.png"
    assert (report / "figure_5_3_confusion.png").read_bytes() == confusion.read_bytes()
    assert "## Figure 5.10: brightness variation in the nonorm variant (text-2s-nonorm vs text-2s, FC)\n\n" \
           "Not in this run (no samples of text-2s-nonorm at guidance 3)." in readme
    assert not (report / "figure_5_10_nonorm_brightness.png").exists()


def test_the_nonorm_study_draws_figure_5_10(run_dir, result):
    _build(run_dir, grid=variants.grid([1, 2], ["text", "frozen", "mutual"], {**STUDY, "variants": ["nonorm"]}),
           out="report_nonorm")
    assert (run_dir / "report_nonorm/figure_5_10_nonorm_brightness.png").stat().st_size > 1000
    _build(run_dir)  # the module's other tests read the full run's summary


def test_the_recipe_card_lists_every_departure_from_the_thesis(run_dir, result):
    card = result["recipe"]
    assert card["sampler"] == "dpmpp" and card["steps"] == 25 and card["ddpm_variance"] is None
    assert card["pretrained_audioclip"] is False and card["audioclip_checkpoint_sha256"] is None
    assert card["fid_feature_extractor"] == "classifier_penultimate" and card["thesis_recipe"] is False
    departures = {d["key"]: d for d in card["departures"]}
    assert departures["train.output_skip"] == {**departures["train.output_skip"], "thesis": False, "ours": True,
                                                 "kind": "method"}
    assert departures["sample.sampler"]["ours"] == "dpmpp" and departures["prepare.image_size"]["kind"] == "size"
    assert "train.p_uncond" not in departures  # the same as the thesis
    readme = (run_dir / "report/README.md").read_text()
    assert "## Recipe card" in readme and "| `train.output_skip` | False | True | 3.3.2" in readme
    assert "sampler: **dpmpp, 25 steps**" in readme and "pretrained AudioCLIP: **no (random init)**" in readme


def test_no_validation_metrics_is_a_clear_error():
    rows = pd.DataFrame([_evaluation("text-1s", 2, 3.0, 0.5)])
    with pytest.raises(ValueError, match="no validation metrics of the main grid"):
        build_select(rows)


def test_a_main_grid_variant_without_validation_metrics_is_a_clear_error():
    test = pd.DataFrame([_evaluation("text-1s", 2, 3.0, 0.5), _evaluation("mutual-1s", 2, 3.0, 0.4)])
    val = test.iloc[:1].assign(split="val")
    from a2i.evaluation.selection import select_best

    with pytest.raises(ValueError, match=r"no validation metrics of the main grid for mutual-1s \(metrics"):
        select_best(test, val, 3.0)


def test_scores_equal_but_for_their_last_bit_tie_and_the_earliest_epoch_wins():
    from a2i.evaluation.selection import best_row

    # the same hits over two seeds, summed in another order
    rows = pd.DataFrame([_evaluation("text-1s", 4, 3.0, 0.2538461538461539),
                         _evaluation("text-1s", 2, 3.0, 0.25384615384615383)])
    assert best_row(rows)["epoch"] == 2


def test_the_readme_links_only_the_figures_a_run_drew(run_dir, result):
    readme = (run_dir / "report" / "README.md").read_text()
    linked = re.findall(r"!\[5\.\d+\]\((figure_[^)]+)\)", readme)
    assert linked and all((run_dir / "report" / name).is_file() for name in linked)


def build_select(test_rows):
    from a2i.evaluation.selection import select_best

    return select_best(test_rows, test_rows.iloc[:0], 3.0)


def test_impossible_metrics_stop_the_report_in_one_line(run_dir, result):
    path = run_dir / "metrics" / "evaluate" / "text-1s" / f"{variants.evaluation_name(2, 3.0)}.json"
    good = path.read_text()
    write_json(path, {**json.loads(good), "fid_classifier_test": -3.0})
    try:
        with pytest.raises(ValueError, match=rf"^{path}: impossible metrics \(fid_classifier_test=-3.0: negative\)"):
            _build(run_dir, out="report_impossible")
    finally:
        path.write_text(good)
    assert not (run_dir / "report_impossible").exists()


def _evaluation_file(run_dir) -> Path:
    return run_dir / "metrics" / "evaluate" / "text-1s" / f"{variants.evaluation_name(2, 3.0)}.json"


@pytest.mark.parametrize("damage, message", [
    (lambda row: row | {"adherence": None}, r"incomplete metrics \(adherence=None: not a number\)"),
    (lambda row: {k: v for k, v in row.items() if k != "fid_classifier_test"},
     r"incomplete metrics \(fid_classifier_test=None: not a number\)"),
    (lambda row: row | {"feature_extractor": "vgg"}, r"incomplete metrics \(feature_extractor='vgg': not one of "),
])
def test_a_metric_left_out_or_null_stops_the_report_in_one_line(run_dir, result, damage, message):
    # Read as NaN it would print blank cells and statistics over fewer points, and could move the best model.
    path = _evaluation_file(run_dir)
    good = path.read_text()
    write_json(path, damage(json.loads(good)))
    try:
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {message}"):
            _build(run_dir, out="report_incomplete")
    finally:
        path.write_text(good)
    assert not (run_dir / "report_incomplete").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda run: _evaluation_file(run).write_text('{"variant": '),
     lambda run: rf"^{re.escape(str(_evaluation_file(run)))} is not readable JSON \(Expecting value"),
    (lambda run: (run / "metrics/classifier_hr.json").unlink(),
     lambda run: rf"^{re.escape(str(run / 'metrics/classifier_hr.json'))} not found: run the classify stage$"),
    (lambda run: (run / "metrics/evaluate_sr/bicubic.json").write_text("[1, 2]"),
     lambda run: rf"^{re.escape(str(run / 'metrics/evaluate_sr/bicubic.json'))} holds a JSON list, not an object$"),
    (lambda run: (run / "metrics/finetune/text-1s.json").write_text('{"alignment": "text"}'),
     lambda run: rf"^{re.escape(str(run / 'metrics/finetune/text-1s.json'))} lacks 'length_s', 'pretrained'$"),
])
def test_a_damaged_or_missing_input_file_is_named(run_dir, result, tmp_path, damage, message):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report*"))
    damage(copy)
    with pytest.raises(ValueError, match=message(copy)):
        _build(copy)
    assert not (copy / "report").exists()


def test_a_missing_confusion_plot_or_study_epoch_is_named(run_dir, result, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report*"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(copy)
        with pytest.raises(ValueError, match=r"^text-2s-nocfg has no evaluated checkpoint at epoch 3 \(report\.study"
                                             r"\.epoch; evaluated: 4\)$"):
            build_report(out=copy / "report", metrics_dir=copy / "metrics", plots_dir=copy / "plots/confusion",
                         prepared=copy / "data/prepared", grid=GRID, guidance=3.0, cfg_sweep="text-2s",
                         study_epoch=3, dataset="synthetic", params=DEFAULT_PARAMS)
    for png in (copy / "plots/confusion").rglob("*.png"):
        png.unlink()
    with pytest.raises(ValueError, match=r"plots/confusion/frozen-2s/epoch_004_g3\.png not found: run the "
                                         r"evaluate stage of frozen-2s$"):  # the best on test's (figure 5.3)
        _build(copy)
    assert not (copy / "report").exists()


def test_an_interval_that_excludes_its_point_estimate_is_drawn(tmp_path):
    # Bootstrap replicates of a Frechet distance sit above its point estimate (a2i.evaluation.stats).
    best = pd.DataFrame({"variant": ["text-1s", "text-2s"], "alignment": "text", "length_s": [1, 2], "epoch": [2, 4],
                         "fid_test": [3.0, 4.0], "fid_test_ci_low": [3.5, 4.2], "fid_test_ci_high": [4.0, 5.0]})
    figures.best_by_variant(best, "fid_test", tmp_path / "fid.png", lower_is_better=True, ylabel="fid_test")
    assert (tmp_path / "fid.png").stat().st_size > 1000
