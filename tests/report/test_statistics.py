"""The thesis' statistics, Table 5.3 and the mirrored-rows count, against hand-computed values.

y = (1, 2, 4) on x = (1, 2, 3) (or any linear map of x) has R = 3 / sqrt(2 * 42/9) = 0.982 and, with one degree of
freedom, t = sqrt(27), p = 1 - 2/pi * atan(sqrt(27)) = 0.121.
"""

from __future__ import annotations

import pandas as pd

from a2i.data.layout import INSTRUMENTS
from a2i.report import statistics, tables

HAND = "R = 0.982, p = 0.121, n = 3"


def _finetune(rows: list[tuple[str, int, list[float]]]) -> pd.DataFrame:
    return pd.DataFrame([{"alignment": a, "length_s": length} | {f"query_acc_epoch{e}": v for e, v in enumerate(acc)}
                         for a, length, acc in rows])


def test_correlation_and_when_there_is_none():
    assert statistics.correlation([1, 2, 3], [1, 2, 4]) == HAND
    assert statistics.correlation([1, 2], [1, 2]) == "n/a (n < 3)"
    assert statistics.correlation([1, 1, 2, 2], [1, 2, 3, 4]) == "n/a (fewer than 3 distinct x)"  # two lengths
    assert statistics.correlation([1, 2, 3], [5, 5, 5]) == "n/a (constant)"


def test_query_accuracy_statistics():
    finetune = _finetune([("text", 1, [0.1, 0.9, 0.1]), ("text", 2, [0.2, 0.2, 0.8]), ("text", 3, [0.4, 1.0, 0.2]),
                          ("frozen", 1, [0.1, 0.3, 0.5]), ("frozen", 2, [0.2, 0.3, 0.5]),
                          ("frozen", 3, [0.4, 0.3, 0.5]), ("mutual", 1, [0.1, 0.6, 0.6]),
                          ("mutual", 2, [0.2, 0.6, 0.6]), ("mutual", 3, [0.4, 0.6, 0.6])])
    assert statistics.zero_shot(finetune, ("text",)) == HAND
    # The same three points twice: R = 0.982 with t = sqrt(27) * 2 on 4 degrees of freedom, p = 0.0005.
    assert statistics.zero_shot(finetune, ("frozen", "mutual")) == "R = 0.982, p = 0.000, n = 6"
    # Best fine-tuned text accuracy (epochs >= 1): 0.9, 0.8, 1.0 on 1, 2, 3 s: R = 0.5 (t = 1/sqrt(3), p = 2/3).
    assert statistics.fine_tuned_text(finetune) == "R = 0.500, p = 0.667, n = 3"
    # First best epoch: text 1, 2, 1; frozen 2, 2, 2; mutual 1, 1, 1 (ties: the earliest) on lengths 1, 2, 3.
    # Each alignment's epochs are symmetric in length, so the covariance with length is 0.
    assert statistics.best_finetune_epoch(finetune) == "R = 0.000, p = 1.000, n = 9"


def test_grid_and_cfg_statistics():
    # Best adherence at epochs 10, 20, 40 (the later tie of 20 ignored) on 1, 2, 3 s.
    grid = pd.DataFrame({"alignment": "text", "length_s": [1, 1, 2, 2, 2, 3, 3],
                         "epoch": [10, 20, 10, 20, 40, 20, 40], "adherence": [0.6, 0.5, 0.1, 0.7, 0.7, 0.2, 0.3],
                         "fid_train": [10.0, 10, 10, 10, 10, 10, 10], "fid_test": [11.0, 12, 13, 11, 12, 13, 12]})
    assert statistics.best_diffusion_epoch(grid) == HAND
    # Gaps 1, 2, 3, 1, 2, 3, 2: mean 2, sd sqrt(4/6) = 0.82.
    assert statistics.fid_gap(grid) == "2.00 +- 0.82 (n = 7)"
    cfg = pd.DataFrame([{"guidance": s} | {f"acc_{i}": acc for i in INSTRUMENTS}
                        for s, acc in ((1.0, 0.9), (3.0, 0.1), (5.0, 0.2), (7.0, 0.4))])
    assert statistics.cfg_adherence(cfg) == HAND  # s = 1 left out


def test_the_thesis_statistics_recomputed_from_its_tables():
    thesis = statistics.statistics_table(statistics.published_finetune(), statistics.published_grid(),
                                         statistics.published_cfg())
    recomputed = dict(zip(statistics.LABELS, thesis["Thesis (recomputed from its tables)"]))
    assert recomputed == {
        "zero_shot_text": "R = 0.880, p = 0.049, n = 5",
        "zero_shot_image": "R = 0.850, p = 0.002, n = 10",
        "fine_tuned_text": "R = 0.866, p = 0.058, n = 5",
        "best_finetune_epoch": "R = 0.631, p = 0.012, n = 15",
        "best_diffusion_epoch": "R = 0.037, p = 0.896, n = 15",
        "cfg_adherence": "R = -0.969, p = 0.006, n = 5",
        "fid_gap": "15.66 +- 3.03 (n = 150)",
    }


def test_table_5_3_takes_the_best_test_fid_of_the_main_grid():
    evaluations = pd.DataFrame({  # test rows; only the first three are in the main grid
        "variant": ["text-2s", "text-2s", "mutual-3s", "text-2s-pca", "text-2s"],
        "study": ["", "", "", "pca", ""],
        "epoch": [10, 20, 20, 20, 20], "guidance": [3.0, 3.0, 3.0, 3.0, 5.0],
        "fid_test": [80.0, 78.5, 79.0, 10.0, 20.0]})
    table = tables.table_5_3(evaluations, "fid_test", 3.0, 64)
    assert table.to_dict("list") == {
        "Method": ["S2I-C", "CMCGAN", "CMCRL + SAGAN", "Ours (text-2s, epoch 20)"],
        "Resolution": ["64x64", "", "256x256", "64x64"], "FID": [252.66, 215.92, 107.26, 78.5]}


def test_mirrored_rows():
    table = pd.DataFrame({"Time": [1, 2], **{str(e): [float(e), float(min(e, 130 - e))] for e in range(10, 101, 10)}})
    assert tables.mirrored_rows(table).tolist() == [False, True]
    assert [int(tables.mirrored_rows(tables.published(name)).sum()) for name in ("table_5_4", "table_5_5")] == [13, 13]
