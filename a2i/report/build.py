"""The `report` stage: every thesis table and figure from the metrics, and `metrics/summary.json`."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from a2i import thesis, variants
from a2i.data.layout import LABELS, SAMPLE_RATE
from a2i.evaluation.selection import best_row, main_grid, only_grid, select_best
from a2i.evaluation.stats import collect_metrics
from a2i.io import atomic_dir, load_npy, load_npz, read_json, write_csv, write_json, write_text
from a2i.report import figures, statistics, tables

log = logging.getLogger(__name__)

THESIS_NOTE = {
    "synthetic": "**Different dataset.** Our numbers come from the embedded *synthetic* Sub-URMP (tiny models, CPU); "
                 "the thesis' come from the real Sub-URMP. Compare trends, not values.",
    "suburmp": "Our numbers and the thesis' both come from the real Sub-URMP.",
}
DATASET_NOTE = {
    "synthetic": "The embedded Sub-URMP (`a2i/data/synthetic.py`): each performance plays phrases with its own "
                 "tempo, articulation, dynamics, vibrato and microphone gain on the recorded instrument samples of a "
                 "General MIDI SoundFont, over a room's noise floor shaped like the real chunks' (a rumble below "
                 "100 Hz), and shows its own player (drawn by performance "
                 "number: the same few people play every instrument) in front of a blue curtain, moving with the "
                 "music. Nothing is added that a real recording lacks.",
    "suburmp": "Sub-URMP (Chen et al. 2017): 0.5 s chunks and video frames of 13 instruments from the URMP "
               "recordings.",
}


def load_finetune(metrics_dir: Path) -> pd.DataFrame:
    rows = [read_json(path, "alignment", "length_s", "pretrained")
            for path in sorted((metrics_dir / "finetune").glob("*.json"))]
    if not rows:
        raise ValueError(f"no fine-tuning metrics in {metrics_dir / 'finetune'}")
    frame = pd.DataFrame(rows)
    frame["embedding"] = [f"{a}-{int(length)}s" for a, length in zip(frame["alignment"], frame["length_s"])]
    return frame


def summary(selected: pd.Series, on_test: pd.Series, val_adherence: float, classifier: dict, dataset: str,
            fid: str, card: dict) -> dict:
    result = {
        "dataset": dataset,
        "classifier_test_accuracy": classifier["test_accuracy"],
        "selected_on": "val",
        "best_variant": selected["variant"],
        "best_epoch": int(selected["epoch"]),
        "best_guidance": float(selected["guidance"]),
        "best_val_adherence": val_adherence,
        "best_adherence": float(selected["adherence"]),
        "best_adherence_ci_low": float(selected["adherence_ci_low"]),
        "best_adherence_ci_high": float(selected["adherence_ci_high"]),
        "best_on_test_variant": on_test["variant"],
        "best_on_test_epoch": int(on_test["epoch"]),
        "best_on_test_adherence": float(on_test["adherence"]),
        "feature_extractor": selected["feature_extractor"],
    }
    for split in ("train", "test"):
        column = fid.replace("_test", f"_{split}")
        result[column] = float(selected[column])
    result["fid_metric"] = fid
    return result | {"recipe": card}


def recipe_card(params: dict, finetune: pd.DataFrame, feature_extractor: str) -> dict:
    """What the run did, against the thesis' recipe (a2i.thesis): sampler, pretrained AudioCLIP, FID features
    and every parameter whose value differs from the thesis table, computed, never written by hand."""
    sample = params["sample"]
    sha = sorted({str(v) for v in finetune.get("checkpoint_sha256", pd.Series(dtype=object)).dropna()})
    departures = thesis.departures(params)
    return {
        "sampler": sample["sampler"], "steps": int(sample["steps"]),
        "ddpm_variance": sample["ddpm_variance"] if sample["sampler"] == "ddpm" else None,
        "pretrained_audioclip": bool(finetune["pretrained"].all()),
        "audioclip_checkpoint_sha256": sha[0] if len(sha) == 1 else (sha or None),
        "fid_feature_extractor": feature_extractor,
        "thesis_recipe": not [d for d in departures if d.kind != "addition"],
        "method_departures": sum(d.kind == "method" for d in departures),
        "departures": [{"key": d.key, "thesis": d.thesis, "ours": d.ours, "kind": d.kind, "section": d.section,
                        "why": d.why} for d in departures],
    }


def _card_markdown(card: dict, params: dict) -> str:
    sampler = f"{card['sampler']}, {card['steps']} steps" + (
        f" (posterior variance {card['ddpm_variance']})" if card["ddpm_variance"] else "")
    lines = [
        "## Recipe card\n",
        "How this run was made, against the thesis' recipe (`a2i/thesis.py`; computed from params.yaml).\n",
        f"- sampler: **{sampler}**",
        f"- pretrained AudioCLIP: **{'yes' if card['pretrained_audioclip'] else 'no (random init)'}**"
        + (f", checkpoint sha256 `{card['audioclip_checkpoint_sha256']}`" if card["audioclip_checkpoint_sha256"]
           else ""),
        f"- FID feature extractor: **{card['fid_feature_extractor']}**",
        "- the thesis recipe: **" + ("yes" if card["thesis_recipe"] else "no: the parameters below differ") + "**\n",
    ]
    for kind, title in (("method", "Departures in method"), ("size", "Run size (amount of work and model size)"),
                        ("addition", "Additions (beyond the thesis, its outputs unchanged)")):
        rows = [d for d in card["departures"] if d["kind"] == kind]
        if rows:
            lines += [f"**{title}**\n", "| parameter | thesis | this run | thesis section | why |",
                      "|---|---|---|---|---|"]
            lines += [f"| `{d['key']}` | {d['thesis']} | {d['ours']} | {d['section']} | {d['why']} |" for d in rows]
            lines.append("")
    lines += [f"- `{key}` = {thesis.value_at(params, key)!r}: {note}" for key, note in thesis.UNPINNED.items()]
    return "\n".join(lines) + "\n"


def _write_table(out: Path, name: str, table: pd.DataFrame) -> str:
    write_csv(out / f"{name}.csv", table)
    markdown = tables.to_markdown(table)
    write_text(out / f"{name}.md", markdown)
    return markdown


def _section(title: str, ours: str, published_name: str | None, note: str = "") -> str:
    text = f"## {title}\n\n{note}\n\n**Ours**\n\n{ours}\n"
    if published_name:
        text += f"\n**Thesis (published)**\n\n{tables.to_markdown(tables.published(published_name))}\n"
    return text


def real_test_images(prepared: Path, length_s: int,
                     images_file: str = variants.IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """The real test frames of each test sample of `length_s` (index order) from `images_file`, and their labels."""
    index = pd.read_csv(prepared / f"index_{length_s}s_test.csv")
    images = load_npy(prepared / images_file)
    return np.asarray(images[index["image"].to_numpy()]), index["label"].to_numpy()


def _dataset_section(out: Path, prepared: Path, dataset: str, seconds: int = 2) -> str:
    """The data the run saw: one frame per performance (the prepared high-resolution crops) and the log-mel
    spectrogram of `seconds` from the middle of each instrument's first performance."""
    performances = pd.read_csv(prepared / "performances.csv")
    frames = pd.read_csv(prepared / "images.csv")
    images = load_npy(prepared / variants.HR_IMAGES)
    middle = frames.groupby("performance")["image"].median().astype(int)
    sheet = {name: [np.asarray(images[middle[p]]) for p in group["performance"] if p in middle.index]
             for name, group in performances.groupby("instrument", sort=False)}
    figures.contact_sheet(sheet, out / "dataset_frames.png")
    tracks = load_npy(prepared / "tracks.npy")
    first = performances.drop_duplicates("instrument")
    examples = {row.instrument: np.array(tracks[row.offset + row.samples // 2 - seconds * SAMPLE_RATE // 2:]
                                           [:seconds * SAMPLE_RATE]) for row in first.itertuples()}
    figures.spectrograms(examples, SAMPLE_RATE, out / "dataset_spectrograms.png")
    return (f"## The dataset\n\n{DATASET_NOTE[dataset]}\n\nOne frame per performance (rows: instruments; the "
            "crops the models see, at the high resolution):\n\n![frames](dataset_frames.png)\n\n"
            f"{seconds} s of each instrument (log-mel spectrogram, dB):\n\n![spectrograms](dataset_spectrograms.png)\n")


def build_report(*, out: Path, metrics_dir: Path, plots_dir: Path, prepared: Path, grid: list[variants.Variant],
                 guidance: float, cfg_sweep: str, study_epoch: int | None, dataset: str, params: dict) -> dict:
    """Write report/ (tables, figures, grids, README.md) of the experiment over `grid` (see `variants.grid`) and
    return the summary (also metrics/summary.json); `params` is the whole params.yaml, for the recipe card.
    The CFG and projection studies of the cell `cfg_sweep` (its sweep's other scales: metrics/evaluate_cfg/<cell>)
    are read at `study_epoch` (None: the final checkpoint). The folder is built aside and moved into place at the
    end: a failure leaves no partial report."""
    with atomic_dir(out) as staging:
        result = _write_report(staging, metrics_dir, plots_dir, prepared, grid, guidance, cfg_sweep, study_epoch,
                               dataset, params)
    write_json(metrics_dir / "summary.json", result)
    log.info("report written to %s; best variant %s (selected on validation; test adherence %.3f)", out,
             result["best_variant"], result["best_adherence"])
    return result


def _write_report(out: Path, metrics_dir: Path, plots_dir: Path, prepared: Path, grid: list[variants.Variant],
                  guidance: float, cfg_sweep: str, study_epoch: int | None, dataset: str, params: dict) -> dict:
    counts_path = prepared / "counts.csv"
    if not counts_path.is_file():
        raise ValueError(f"{counts_path} not found: run the prepare stage")
    counts = pd.read_csv(counts_path)
    embeddings = sorted({v.embedding for v in grid})
    finetune = only_grid(load_finetune(metrics_dir), "embedding", embeddings, metrics_dir / "finetune")
    classifier = read_json(metrics_dir / "classifier.json", "test_accuracy", hint="run the classify stage")
    # The CFG sweep's other scales: of the study's cell only (DVC keeps the sweep of an earlier study cell).
    every = only_grid(collect_metrics(metrics_dir / "evaluate", metrics_dir / "evaluate_cfg" / cfg_sweep), "variant",
                      [v.name for v in grid], metrics_dir / "evaluate")
    evaluations, validation = every[every["split"] == "test"], every[every["split"] == "val"]
    selected, val_adherence, on_test = select_best(evaluations, validation, guidance)
    write_csv(out / "metrics.csv", every)
    fid_test, fid_train = tables.fid_column(evaluations, "test"), tables.fid_column(evaluations, "train")
    fid_note = ("FID: pytorch-fid InceptionV3 pool3." if fid_test == "fid_test" else
                "No Inception weights were available: `fid_classifier` is the Frechet distance in the instrument "
                "classifier's penultimate features. It is **not** FID and not comparable with the thesis' values.")
    note = THESIS_NOTE[dataset]
    main = main_grid(evaluations, guidance)
    cfg = tables.cfg_rows(evaluations, cfg_sweep, study_epoch)

    sections = [
        _dataset_section(out, prepared, dataset),
        _section("Table 4.1: class instances per dataset variant",
                 _write_table(out, "table_4_1", tables.table_4_1(counts)), "table_4_1", note),
        _section("Table 5.1: AudioCLIP test query accuracy by fine-tuning epoch",
                 _write_table(out, "table_5_1", tables.table_5_1(finetune)), "table_5_1",
                 f"{note} Pretrained AudioCLIP weights: {bool(finetune['pretrained'].all())}."),
        _section(f"Table 5.2: conditional adherence by epoch (guidance {guidance:g})",
                 _write_table(out, "table_5_2", tables.by_epoch(evaluations, guidance, "adherence", True)),
                 "table_5_2", note),
        _section(f"Table 5.4: {fid_train} (generated vs real train) by epoch",
                 _write_table(out, "table_5_4", tables.by_epoch(evaluations, guidance, fid_train, False)),
                 "table_5_4", fid_note),
        _section(f"Table 5.5: {fid_test} (generated vs real test) by epoch",
                 _write_table(out, "table_5_5", tables.by_epoch(evaluations, guidance, fid_test, False)),
                 "table_5_5", fid_note),
    ]
    sections += _thesis_extras(out, evaluations, on_test, finetune, prepared, plots_dir, guidance, cfg_sweep,
                               study_epoch, fid_test, fid_train)
    upsampled = load_upsampled(metrics_dir / "evaluate_sr", selected)
    judge_hr = read_json(metrics_dir / "classifier_hr.json", "test_accuracy", hint="run the classify stage")[
        "test_accuracy"]
    judges = (classifier["test_accuracy"], judge_hr)
    sections.append(_superres_section(out, selected, upsampled, prepared, fid_test, judges))

    figures.query_accuracy(finetune, out / "figure_5_1_query_accuracy.png")
    figures.best_by_variant(main, "adherence", out / "figure_5_2_adherence.png", lower_is_better=False,
                            ylabel="conditional adherence")
    figures.best_by_variant(main, fid_test, out / "figure_5_5_fid.png", lower_is_better=True, ylabel=fid_test)
    sections += _study_sections(out, evaluations, cfg, cfg_sweep, guidance, study_epoch, fid_test, fid_note, note)

    checkpoint = variants.evaluation_name(int(on_test["epoch"]), float(on_test["guidance"]))
    # The evaluate stage drew every confusion matrix. Figure 5.3 is the thesis' "best performing model", the best
    # on test (5.2.2), whichever checkpoint validation selects for the headline.
    confusion = plots_dir / on_test["variant"] / f"{checkpoint}.png"
    if not confusion.is_file():
        raise ValueError(f"{confusion} not found: run the evaluate stage of {on_test['variant']}")
    shutil.copyfile(confusion, out / "figure_5_3_confusion.png")
    grids = _image_grids(out, main, main_grid(validation, guidance), prepared)

    card = recipe_card(params, finetune, str(selected["feature_extractor"]))
    result = summary(selected, on_test, val_adherence, classifier, dataset, fid_test, card)
    result["upsampling"] = {row["method"]: {key: float(row[key]) for key in (
        "resolution", "adherence", "adherence_ci_low", "adherence_ci_high", fid_test)}
        for _, row in upsampled.iterrows()}
    drawn = [(label, name) for label, name in FIGURES if (out / name).is_file()]  # a run draws what it has data for
    write_text(out / "README.md", _readme(result, _card_markdown(card, params), sections, grids, fid_note, drawn))
    return result


def load_upsampled(folder: Path, selected: pd.Series) -> pd.DataFrame:
    """The evaluate_sr metrics (one row per upsampling method) of the selected checkpoint's images."""
    rows = [read_json(path, "method", "variant", "epoch", "guidance") for path in sorted(folder.glob("*.json"))]
    if not rows:
        raise ValueError(f"no super-resolution metrics in {folder}: run the evaluate_sr stage")
    frame = pd.DataFrame(rows)
    chosen = (selected["variant"], int(selected["epoch"]), float(selected["guidance"]))
    stale = [row for row in rows if (row["variant"], row["epoch"], row["guidance"]) != chosen]
    if stale:
        raise ValueError(f"{folder} scores {stale[0]['variant']} epoch {stale[0]['epoch']}, not the selected "
                         f"checkpoint {chosen[0]} epoch {chosen[1]}: run sample_sr and evaluate_sr again")
    return frame


def _superres_section(out: Path, selected: pd.Series, upsampled: pd.DataFrame, prepared: Path, fid_test: str,
                      judges: tuple[float, float]) -> str:
    """Table 5.3's rows of ours at the base and the high resolution, and the base / bicubic / diffusion figure
    (the upsampled images and their evaluation share the `evaluate` section's Frechet distance, `fid_test`).
    `judges`: the test accuracy of the classifiers at the base and the high resolution."""
    image_size = load_npy(prepared / variants.IMAGES).shape[1]
    table = tables.upsampling_rows(selected, upsampled, fid_test, image_size)
    base_path = _first_seed(selected["variant"], int(selected["epoch"]), float(selected["guidance"]))
    images, labels, rows = load_npz(base_path, "images", "labels", "rows")
    columns = {f"generated {image_size}": images}
    for method in variants.UPSAMPLERS:
        columns[method], = load_npz(variants.upsampled_dir(method) / base_path.name, "images")
    real, _ = real_test_images(prepared, int(selected["length_s"]), variants.HR_IMAGES)
    high_size = real.shape[1]
    columns[f"real {high_size}"] = real[rows]
    figures.upsampling_comparison(columns, labels, out / "figure_superres.png")
    space = ("" if fid_test == "fid_test" else
             ", in the high-resolution classifier's features (not comparable with the base row)")
    note = (f"Beyond the thesis (its future work, 6.2): the selected checkpoint's test images upsampled "
            f"{image_size} -> {high_size} by the diffusion super-resolution model (`train_sr`, `sample_sr`) and "
            "by bicubic interpolation, the baseline it has to beat. Each resolution is judged by a classifier "
            f"trained at that resolution (test accuracy on the real crops: {judges[0]:.3f} at {image_size}, "
            f"{judges[1]:.3f} at {high_size}); the Frechet distances at the high "
            f"resolution are to the real high-resolution test crops{space}.")
    return (_section("Table 5.3 (continued): ours at the base and the high resolution", _write_table(
        out, "table_5_3_superres", table), None, note) + "\n![upsampling](figure_superres.png)\n")


def _study_sections(out: Path, evaluations: pd.DataFrame, cfg: pd.DataFrame, cfg_sweep: str, guidance: float,
                    study_epoch: int | None, fid_test: str, fid_note: str, note: str) -> list[str]:
    """Tables 5.6-5.9 and Figures 5.6/5.8, when this run includes the CFG and projection studies."""
    at = "final checkpoint" if study_epoch is None else f"epoch {study_epoch}"
    sections = []
    if cfg.empty:
        sections.append(f"## Tables 5.6-5.8: CFG study\n\nNot in this run (no samples of {cfg_sweep}).\n")
    else:
        sections += [
            _section(f"Table 5.6: {fid_test} by CFG scale ({cfg_sweep}, {at}; None = trained without CFG)",
                     _write_table(out, "table_5_6", tables.table_5_6(evaluations, cfg_sweep, study_epoch)),
                     "table_5_6", fid_note),
            _section("Table 5.7: adherence by CFG scale",
                     _write_table(out, "table_5_7", tables.table_5_7(evaluations, cfg_sweep, study_epoch)),
                     "table_5_7", note),
            _section("Table 5.8: per-instrument adherence by CFG scale",
                     _write_table(out, "table_5_8", tables.table_5_8(evaluations, cfg_sweep, study_epoch)),
                     "table_5_8", note),
        ]
        figures.cfg_scales(cfg, fid_test, out / "figure_5_6_cfg.png")
        figures.cfg_per_class(cfg, out / "figure_5_8_cfg_per_class.png")
    projection = tables.table_5_9(evaluations, cfg_sweep, guidance, study_epoch)
    if len(projection) < 2:
        sections.append(f"## Table 5.9: projection study\n\nNot in this run (no {cfg_sweep}-pca variant).\n")
    else:
        sections.append(_section(f"Table 5.9: projection mechanisms ({at})",
                                 _write_table(out, "table_5_9", projection), "table_5_9", fid_note))
    return sections


def _image_grids(out: Path, main: pd.DataFrame, main_val: pd.DataFrame, prepared: Path) -> list[str]:
    """Generated vs real test images per instrument, for each variant's checkpoint selected on validation."""
    names = []
    for variant, frame in main.groupby("variant"):
        chosen = best_row(main_val[main_val["variant"] == variant])
        best = frame[frame["epoch"] == chosen["epoch"]].iloc[0]
        real, real_labels = real_test_images(prepared, int(best["length_s"]))
        samples = _first_seed(variant, int(best["epoch"]), float(best["guidance"]))
        images, labels = load_npz(samples, "images", "labels")
        figures.image_grid(real, real_labels, images, labels, out / f"grid_{variant}.png")
        names.append(f"grid_{variant}.png")
    return names


FIGURES = (("5.1", "figure_5_1_query_accuracy.png"), ("5.2", "figure_5_2_adherence.png"),
           ("5.3", "figure_5_3_confusion.png"), ("5.5", "figure_5_5_fid.png"), ("5.6", "figure_5_6_cfg.png"),
           ("5.8", "figure_5_8_cfg_per_class.png"), ("5.4", "figure_5_4_poorly_aligned.png"),
           ("5.7", "figure_5_7_large_cfg.png"), ("5.9", "figure_5_9_pca_brightness.png"),
           ("5.10", "figure_5_10_nonorm_brightness.png"))


def _figure_rows(drawn: list[tuple[str, str]]) -> list[str]:
    """The README's two-column table of the figures drawn."""
    cells = [f"![{label}]({name})" for label, name in drawn]
    cells += [""] * (len(cells) % 2)
    rows = [f"| {left} | {right} |" for left, right in zip(cells[::2], cells[1::2])]
    return ["| | |\n|---|---|", *rows[:-1], rows[-1] + "\n"] if rows else []


def _readme(result: dict, card: str, sections: list[str], grids: list[str], fid_note: str,
            drawn: list[tuple[str, str]]) -> str:
    fid = result["fid_metric"]
    head = [
        "# a2i report\n",
        "Regenerated by the `report` stage from `metrics/`; every table is also in this folder as CSV and markdown.\n",
        "## Summary\n",
        f"- dataset: **{result['dataset']}**",
        f"- instrument classifier test accuracy: **{result['classifier_test_accuracy']:.4f}**",
        f"- best model, selected on validation adherence over the main grid at guidance {result['best_guidance']:g}: "
        f"**{result['best_variant']}** at epoch {result['best_epoch']} "
        f"(validation {result['best_val_adherence']:.3f}, the same number of conditions per instrument); "
        f"its test adherence **{result['best_adherence']:.3f}** "
        f"(95% bootstrap CI {result['best_adherence_ci_low']:.3f}-{result['best_adherence_ci_high']:.3f})",
        "- best on test itself, as the thesis picks it (biased upwards by the choice): "
        f"{result['best_on_test_variant']} "
        f"at epoch {result['best_on_test_epoch']}, adherence {result['best_on_test_adherence']:.3f}",
        f"- {fid} of the selected checkpoint: **{result[fid]:.2f}** (feature extractor: {result['feature_extractor']})",
        f"- {fid_note}\n",
        card,
        "## Figures\n",
        *_figure_rows(drawn),
        "## Generated vs real (each variant's checkpoint selected on validation; left: real test frames, right: "
        "generated)\n",
        *[f"![{name}]({name})" for name in grids],
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(sections)


# The thesis' outputs beyond the rebuilt tables: a footnote to its Tables 5.4/5.5, Table 5.3, its statistics and
# Figures 5.4, 5.7, 5.9 and 5.10. Each figure is left out, with a note, when this run lacks its inputs.

def _thesis_extras(out: Path, test: pd.DataFrame, best: pd.Series, finetune: pd.DataFrame, prepared: Path,
                   plots_dir: Path, guidance: float, cfg_sweep: str, study_epoch: int | None, fid_test: str,
                   fid_train: str) -> list[str]:
    """Markdown sections of the footnote, Table 5.3, the statistics and the four figures; writes their files.
    `test`: the test-split metrics; `best`: the thesis' best model (the best on test, 5.2.2); `study_epoch`: the
    CFG and projection studies' checkpoint (None: each variant's final one)."""
    main = main_grid(test, guidance)
    image_size = load_npy(prepared / variants.IMAGES).shape[1]
    caveat = (f"Resolutions differ (peers up to 256x256, ours {image_size}x{image_size}): not a like-for-like "
              "comparison." + ("" if fid_test == "fid_test" else " `fid_classifier` is not FID, not comparable."))
    swept = test[test["variant"] == cfg_sweep]
    cfg = swept[swept["epoch"] == _study_checkpoint(swept, study_epoch)]
    grid = main.assign(fid_train=main[fid_train], fid_test=main[fid_test])
    return [
        _mirror_footnote(),
        _section("Table 5.3: FID of the GAN peers and our lowest-FID model (main grid, test; chosen on test, as "
                 "the thesis chose its \"Best Diffusion\")",
                 _write_table(out, "table_5_3", tables.table_5_3(test, fid_test, guidance, image_size)),
                 "table_5_3") + f"\n{caveat}\n",
        f"## Thesis statistics (5.2.1, 5.2.3, 5.3)\n\n{statistics.NOTE} Ours: {fid_test} - {fid_train}.\n\n"
        + _write_table(out, "statistics", statistics.statistics_table(finetune, grid, cfg)),
        _figure_5_4(out, best, prepared, plots_dir),
        _figure_5_7(out, swept, cfg_sweep, study_epoch, guidance),
        _brightness_figure(out, test, prepared, cfg_sweep, "pca", "5.9", study_epoch, guidance),
        _brightness_figure(out, test, prepared, cfg_sweep, "nonorm", "5.10", study_epoch, guidance),
    ]


def _mirror_footnote() -> str:
    counts = {name: tables.mirrored_rows(tables.published(name)) for name in ("table_5_4", "table_5_5")}
    found = "; ".join(f"Table {name[6:].replace('_', '.')}: {int(rows.sum())} of {len(rows)} rows"
                      for name, rows in counts.items())
    return (f"**Footnote to the published Tables 5.4 and 5.5.** Rows that mirror around epoch {tables.MIRROR_EPOCH} "
            f"(the value at 30 equals the one at 100, 40 = 90, 50 = 80, 60 = 70): {found}. Likely a reporting error "
            "in the thesis.\n")


def _study_checkpoint(rows: pd.DataFrame, study_epoch: int | None) -> int | None:
    """The studies' checkpoint of one variant's rows: `study_epoch`, else its final one; None without rows."""
    if rows.empty:
        return None
    return int(rows["epoch"].max()) if study_epoch is None else study_epoch


def _first_seed(variant: str, epoch: int | None, guidance: float) -> Path | None:
    """The test images of the first sampling seed: `sample`'s, or the CFG sweep's at its other scales."""
    if epoch is None:
        return None
    pattern = f"{variants.evaluation_name(epoch, guidance)}_s*.npz"
    found = sorted(path for split in ("test", "cfg") for path in variants.samples_dir(variant, split).glob(pattern))
    return found[0] if found else None


def _figure_5_4(out: Path, best: pd.Series, prepared: Path, plots_dir: Path, top: int = 3,
                per_instrument: int = 6) -> str:
    """Real training images of the instruments the best checkpoint confuses most (thesis: oboe/sax -> flute)."""
    title = "## Figure 5.4: poorly semantically aligned instruments (real training images)\n\n"
    checkpoint = variants.evaluation_name(int(best["epoch"]), float(best["guidance"]))
    confusion = plots_dir / best["variant"] / f"{checkpoint}.csv"
    if not confusion.is_file():
        return title + f"Not in this run (no confusion of {best['variant']} {checkpoint}).\n"
    pairs = tables.top_confusions(pd.read_csv(confusion), top)
    if pairs.empty:
        return title + f"Not in this run ({best['variant']} {checkpoint} confuses no instruments).\n"
    index = pd.read_csv(prepared / f"index_{int(best['length_s'])}s_train.csv")
    images = load_npy(prepared / variants.IMAGES)
    names = list(dict.fromkeys(pairs[["actual", "predicted"]].to_numpy().ravel()))  # in order of confusion
    rows = {name: np.asarray(images[index.loc[index["label"] == LABELS[name], "image"].to_numpy()[:per_instrument]])
            for name in names}
    told = ", ".join(f"{a} -> {p} {s:.2f}" for a, p, s in pairs.itertuples(index=False))
    figures.image_rows(rows, out / "figure_5_4_poorly_aligned.png", f"{best['variant']} {checkpoint}: {told}",
                       per_instrument)
    return title + f"Top confusions of {best['variant']} {checkpoint}: {told}.\n\n" \
        "![5.4](figure_5_4_poorly_aligned.png)\n"


def _figure_5_7(out: Path, swept: pd.DataFrame, cfg_sweep: str, study_epoch: int | None, guidance: float) -> str:
    """The same test conditions at the main guidance and at the largest swept CFG scale, one per instrument."""
    title = "## Figure 5.7: generated images at a large CFG scale\n\n"
    epoch = _study_checkpoint(swept, study_epoch)
    scales = swept.loc[swept["epoch"] == epoch, "guidance"]
    large = scales.max() if len(scales) else guidance
    files = [_first_seed(cfg_sweep, epoch, scale) for scale in (guidance, large)]
    if large <= guidance or None in files:
        return title + f"Not in this run (no samples of {cfg_sweep} above guidance {guidance:g}).\n"
    (main, main_labels, main_rows), (strong, _, strong_rows) = (load_npz(path, "images", "labels", "rows")
                                                                for path in files)
    _, at_main, at_large = np.intersect1d(main_rows, strong_rows, return_indices=True)
    first = np.unique(main_labels[at_main], return_index=True)[1]  # one shared condition per instrument
    rows = {f"s = {guidance:g}": main[at_main[first]], f"s = {large:g}": strong[at_large[first]]}
    figures.image_rows(rows, out / "figure_5_7_large_cfg.png", f"{cfg_sweep}, epoch {epoch}", len(first))
    return title + f"{cfg_sweep}, epoch {epoch}: same conditions (columns) at s = {guidance:g} and {large:g}.\n\n" \
        "![5.7](figure_5_7_large_cfg.png)\n"


def _brightness_figure(out: Path, test: pd.DataFrame, prepared: Path, cfg_sweep: str, study: str, figure: str,
                       study_epoch: int | None, guidance: float) -> str:
    """Figures 5.9 (pca) and 5.10 (nonorm): the study variant's samples beside the FC variant's, and brightness."""
    variant = f"{cfg_sweep}-{study}"
    title = f"## Figure {figure}: brightness variation in the {study} variant ({variant} vs {cfg_sweep}, FC)\n\n"
    samples = {}
    for name in (cfg_sweep, variant):
        path = _first_seed(name, _study_checkpoint(test[test["variant"] == name], study_epoch), guidance)
        if path is None:
            return title + f"Not in this run (no samples of {name} at guidance {guidance:g}).\n"
        samples[name], = load_npz(path, "images")
    real, _ = real_test_images(prepared, variants.Variant.parse(cfg_sweep).length)
    png = f"figure_{figure.replace('.', '_')}_{study}_brightness.png"
    figures.brightness(real, samples, out / png)
    spread = ", ".join(f"{name} {figures.mean_brightness(images).std():.1f}"
                       for name, images in {"real test": real, **samples}.items())
    return title + f"SD of per-image mean brightness: {spread}.\n\n![{figure}]({png})\n"
