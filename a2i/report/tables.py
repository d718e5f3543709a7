"""The thesis' tables rebuilt from our metrics, in the thesis' layout (rows, columns, units).

Each builder takes the collected metrics and returns a DataFrame; `published(name)` returns the thesis' own
numbers for the same table (chapter 4-5), so the report can show both side by side.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from a2i.data.layout import INSTRUMENTS
from a2i.evaluation.selection import main_grid

PUBLISHED = Path(__file__).with_name("published")
ALIGNMENT_ORDER = {"frozen": 0, "mutual": 1, "text": 2}  # the thesis lists Frozen, Mutual, Text
# Table 5.3's peers at the resolution the thesis states (5.2.3); it gives none for CMCGAN.
PEER_RESOLUTION = {"S2I-C": "64x64", "CMCRL + SAGAN": "256x256"}
MIRROR_EPOCH = 65  # Tables 5.4/5.5 repeat epoch 65 - d at 65 + d


def published(name: str) -> pd.DataFrame:
    """The thesis' published table `name` (e.g. 'table_5_2'), as printed."""
    return pd.read_csv(PUBLISHED / f"{name}.tsv", sep="\t", dtype=str, keep_default_na=False)


def _title(instrument: str) -> str:
    return instrument.replace("_", " ").capitalize()


def table_4_1(counts: pd.DataFrame) -> pd.DataFrame:
    """Class instances per instrument: original chunk pairs, then train/val/test per sample length."""
    wide = counts.pivot_table(index="instrument", columns=["length_s", "split"], values="samples", aggfunc="sum")
    columns = {"Instrument": [_title(i) for i in INSTRUMENTS]}
    columns["Original Train"] = [int(wide.get((0.5, "original_train"), {}).get(i, 0)) for i in INSTRUMENTS]
    columns["Original Test"] = [int(wide.get((0.5, "original_validation"), {}).get(i, 0)) for i in INSTRUMENTS]
    lengths = sorted({float(l) for l in counts["length_s"] if float(l) >= 1})
    for length in lengths:
        for split in ("train", "val", "test"):
            column = wide.get((length, split))
            label = f"{length:g} s {split.capitalize()}"
            columns[label] = [int(column.get(i, 0)) if column is not None else 0 for i in INSTRUMENTS]
    return pd.DataFrame(columns)


def _grid_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort (length, alignment) rows as the thesis does: alignment blocks, lengths ascending."""
    frame = frame.assign(_order=frame["alignment"].map(ALIGNMENT_ORDER))
    return frame.sort_values(["_order", "length_s"]).drop(columns="_order")


def table_5_1(finetune: pd.DataFrame) -> pd.DataFrame:
    """AudioCLIP query accuracy on the test split by fine-tuning epoch (0 = before fine-tuning)."""
    epochs = sorted(int(c.removeprefix("query_acc_epoch")) for c in finetune if c.startswith("query_acc_epoch"))
    rows = _grid_rows(finetune)
    table = pd.DataFrame({"Time": [f"{int(l)} second" for l in rows["length_s"]],
                          "Alignment": rows["alignment"].str.capitalize().to_list()})
    for epoch in epochs:
        table[str(epoch)] = rows[f"query_acc_epoch{epoch}"].round(2).to_list()
    return table


def by_epoch(evaluations: pd.DataFrame, guidance: float, column: str, percent: bool) -> pd.DataFrame:
    """A (Time, Alignment) x epoch table of one metric: Tables 5.2, 5.4 and 5.5."""
    main = main_grid(evaluations, guidance)
    wide = main.pivot_table(index=["length_s", "alignment"], columns="epoch", values=column).reset_index()
    wide = _grid_rows(wide)
    table = pd.DataFrame({"Time": wide["length_s"].astype(int).to_list(),
                          "Alignment": wide["alignment"].str.capitalize().to_list()})
    for epoch in sorted(main["epoch"].unique()):
        values = wide[epoch]
        table[str(int(epoch))] = [f"{v:.2%}" for v in values] if percent else values.round(2).to_list()
    return table


def table_5_3(evaluations: pd.DataFrame, fid_column: str, guidance: float, image_size: int) -> pd.DataFrame:
    """The thesis' GAN peers (FID as published) and our best test `fid_column` over the main grid: one FID column
    when ours is FID, else ours in its own `fid_classifier` column (another metric, never beside FIDs)."""
    peers = published("table_5_3")
    peers = peers[peers["Method"] != "Best Diffusion"]  # the thesis' own row: shown in the published table
    main = main_grid(evaluations, guidance)
    best = main.loc[main[fid_column].idxmin()]
    metric = "FID" if fid_column == "fid_test" else "fid_classifier"
    ours = pd.DataFrame({"Method": [f"Ours ({best['variant']}, epoch {int(best['epoch'])})"],
                         "Resolution": [f"{image_size}x{image_size}"], metric: [round(float(best[fid_column]), 2)]})
    peers = pd.DataFrame({"Method": peers["Method"], "Resolution": peers["Method"].map(PEER_RESOLUTION).fillna(""),
                          "FID": peers["FID"].astype(float)})
    if metric != "FID":  # empty cells where a row has no value of a column
        peers[metric], ours["FID"] = "", ""
    return pd.concat([peers, ours[peers.columns]], ignore_index=True)


def upsampling_rows(selected: pd.Series, upsampled: pd.DataFrame, fid_column: str, image_size: int) -> pd.DataFrame:
    """Table 5.3's rows of the selected checkpoint: its images at `image_size` and each upsampling of them at the
    high resolution (adherence by the classifier of that resolution, the Frechet distance in its feature space when
    there is no FID), with 95% intervals."""
    rows = [(f"Ours ({selected['variant']}, epoch {int(selected['epoch'])})", image_size, selected)]
    rows += [(f"Ours + {row['method']} upsampling", int(row["resolution"]), row) for _, row in upsampled.iterrows()]

    def interval(row: pd.Series, name: str, digits: int) -> str:
        return f"{row[name]:.{digits}f} ({row[f'{name}_ci_low']:.{digits}f}-{row[f'{name}_ci_high']:.{digits}f})"

    return pd.DataFrame({"Method": [name for name, _, _ in rows],
                         "Resolution": [f"{size}x{size}" for _, size, _ in rows],
                         "Adherence (95% CI)": [interval(row, "adherence", 3) for _, _, row in rows],
                         f"{fid_column} (95% CI)": [interval(row, fid_column, 1) for _, _, row in rows]})


def top_confusions(confusion: pd.DataFrame, top: int) -> pd.DataFrame:
    """The `top` (actual, predicted, share) off-diagonal pairs of a confusion (`actual`, `predicted` per image);
    share is of the actual instrument's images."""
    share = pd.crosstab(confusion["actual"], confusion["predicted"], normalize="index").stack()
    actual, predicted = share.index.get_level_values(0), share.index.get_level_values(1)
    share = share[(actual != predicted) & (share > 0)]
    return share.sort_values(ascending=False, kind="stable").head(top).rename("share").reset_index()


def mirrored_rows(table: pd.DataFrame) -> pd.Series:
    """Which rows of an epoch table repeat their values mirrored around MIRROR_EPOCH (30 = 100, ..., 60 = 70)."""
    epochs = [int(c) for c in table.columns if c.isdigit()]
    pairs = [(e, 2 * MIRROR_EPOCH - e) for e in epochs if e < MIRROR_EPOCH and 2 * MIRROR_EPOCH - e in epochs]
    if not pairs:
        return pd.Series(False, index=table.index)
    return pd.concat([table[str(a)] == table[str(b)] for a, b in pairs], axis=1).all(axis=1)


def fid_column(evaluations: pd.DataFrame, split: str) -> str:
    """`fid_<split>` with Inception weights, else `fid_classifier_<split>` (never called FID)."""
    return f"fid_{split}" if f"fid_{split}" in evaluations and evaluations[f"fid_{split}"].notna().any() \
        else f"fid_classifier_{split}"


def study_rows(frame: pd.DataFrame, epoch: int | None) -> pd.DataFrame:
    """The rows of one study variant at checkpoint `epoch` (None: its final one); ValueError if it has none."""
    rows = frame[frame["epoch"] == (frame["epoch"].max() if epoch is None else epoch)]
    if rows.empty:
        raise ValueError(f"{frame['variant'].iloc[0]} has no evaluated checkpoint at epoch {epoch} "
                         f"(report.study.epoch; evaluated: {', '.join(map(str, sorted(frame['epoch'].unique())))})")
    return rows


def cfg_rows(evaluations: pd.DataFrame, cfg_sweep: str, epoch: int | None) -> pd.DataFrame:
    """The CFG study's rows at checkpoint `epoch` (None: the final one): the nocfg control ('None') and the
    swept scales."""
    rows = []
    for variant, label_of in ((f"{cfg_sweep}-nocfg", lambda g: "None"), (cfg_sweep, lambda g: f"{g:g}")):
        frame = evaluations[evaluations["variant"] == variant]
        if frame.empty:
            continue
        final = study_rows(frame, epoch)
        if variant != cfg_sweep:
            final = final[final["guidance"] == 1.0]
        for _, row in final.sort_values("guidance").iterrows():
            rows.append(row.to_dict() | {"cfg_label": label_of(row["guidance"])})
    return pd.DataFrame(rows)


def table_5_6(evaluations: pd.DataFrame, cfg_sweep: str, epoch: int | None) -> pd.DataFrame:
    cfg = cfg_rows(evaluations, cfg_sweep, epoch)
    column = fid_column(evaluations, "test")
    return pd.DataFrame([["FID" if column == "fid_test" else "fid_classifier", *cfg[column].round(2)]],
                        columns=["CFG Scale", *cfg["cfg_label"]])


def table_5_7(evaluations: pd.DataFrame, cfg_sweep: str, epoch: int | None) -> pd.DataFrame:
    cfg = cfg_rows(evaluations, cfg_sweep, epoch)
    return pd.DataFrame([["Accuracy", *[f"{v:.2%}" for v in cfg["adherence"]]]],
                        columns=["CFG Scale", *cfg["cfg_label"]])


def table_5_8(evaluations: pd.DataFrame, cfg_sweep: str, epoch: int | None) -> pd.DataFrame:
    cfg = cfg_rows(evaluations, cfg_sweep, epoch)
    table = pd.DataFrame({"Name": [_title(i) for i in INSTRUMENTS]})
    for _, row in cfg.iterrows():
        table[row["cfg_label"]] = [f"{row[f'acc_{i}']:.2%}" for i in INSTRUMENTS]
    return table


def table_5_9(evaluations: pd.DataFrame, cfg_sweep: str, guidance: float, epoch: int | None) -> pd.DataFrame:
    """PCA vs fully connected projection at checkpoint `epoch` (None: the final one), main guidance."""
    column = fid_column(evaluations, "test")
    rows = []
    for label, variant in (("PCA", f"{cfg_sweep}-pca"), ("Fully Connected", cfg_sweep)):
        frame = evaluations[(evaluations["variant"] == variant) & (evaluations["guidance"] == guidance)]
        if frame.empty:
            continue
        final = study_rows(frame, epoch).iloc[0]
        rows.append({"Projection": label, "FID" if column == "fid_test" else "fid_classifier": round(final[column], 2),
                     "Accuracy": f"{final['adherence']:.2%}"})
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (pandas' to_markdown needs tabulate; this needs nothing)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
