"""Sub-URMP naming: the 13 instruments, their labels, the `<instrument><NN>_<t>` stems, and the labelled index
tables `prepare` writes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

INSTRUMENTS = (
    "bassoon", "cello", "clarinet", "double_bass", "flute", "horn", "oboe",
    "sax", "trombone", "trumpet", "tuba", "viola", "violin",
)
LABELS = {name: i for i, name in enumerate(INSTRUMENTS)}
SAMPLE_RATE = 44_100
CHUNK_MS = 500
HOP_MS = 100
ORIGINAL_SPLITS = ("train", "validation")
SPLITS = ("train", "val", "test")

# `double_bass01_500`: the instrument itself may hold '_', so match the 2-digit performance index explicitly.
_STEM = re.compile(r"(?P<instrument>[a-z_]+?)(?P<performance>\d{2})_(?P<t>\d+)", re.ASCII)


class Stem(NamedTuple):
    instrument: str
    performance: int
    t_ms: int

    @property
    def name(self) -> str:
        return f"{self.instrument}{self.performance:02d}_{self.t_ms}"


def parse_stem(stem: str) -> Stem:
    """Parse `<instrument><NN>_<t>`; ValueError naming the stem when it does not parse."""
    match = _STEM.fullmatch(stem)
    if not match or match["instrument"] not in LABELS:
        raise ValueError(f"'{stem}' is not a Sub-URMP stem <instrument><NN>_<t ms>")
    parsed = Stem(match["instrument"], int(match["performance"]), int(match["t"]))
    if parsed.name != stem:  # one name per chunk: `cello00_01000` would be a second chunk at 1000 ms
        raise ValueError(f"'{stem}' is not a Sub-URMP stem <instrument><NN>_<t ms>: write it '{parsed.name}'")
    return parsed


def check_split_folder(folder: Path) -> None:
    """ValueError naming `folder` (a `{chunk,img}/<split>`) unless it exists and holds instrument folders only, at
    least one: a missing or empty split means a misnamed split folder or a wrong root, and an unknown (even
    empty) instrument folder a misspelt name."""
    folder = Path(folder)
    if not folder.is_dir():
        found = sorted(p.name for p in folder.parent.iterdir() if p.is_dir()) if folder.parent.is_dir() else []
        raise ValueError(f"{folder}: missing (found: {', '.join(found) or 'nothing'}); expected the Sub-URMP "
                         f"layout Sub-URMP/{{chunk,img}}/{{{','.join(ORIGINAL_SPLITS)}}}/<instrument>/")
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
    unknown = [name for name in subfolders if name not in LABELS]
    if unknown:
        raise ValueError(f"{folder}: unknown instrument folder '{unknown[0]}' (one of {', '.join(INSTRUMENTS)})")
    if not subfolders:
        raise ValueError(f"{folder}: no instrument folder; expected {folder}/<instrument>/ "
                         f"(one of {', '.join(INSTRUMENTS)})")


def read_index(path: Path, columns: tuple[str, ...]):
    """The index table (pandas) that `prepare` wrote at `path`, with `columns`; an unreadable table, a missing
    column or a label that names no instrument is one ValueError naming the file."""
    import pandas as pd

    try:
        index = pd.read_csv(path)
    except ValueError as error:  # pandas' parser and empty-data errors, a file that is no UTF-8
        raise ValueError(f"{path} is not a readable index table ({error})") from None
    missing = [column for column in columns if column not in index]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}")
    if "label" in columns:
        bad = (~index["label"].isin(range(len(INSTRUMENTS)))).to_numpy().nonzero()[0]
        if len(bad):
            raise ValueError(f"{path}: row {bad[0]} has label {index['label'].iloc[bad[0]]}, outside "
                             f"0..{len(INSTRUMENTS) - 1}, the instruments")
    return index


def check_crops(path: Path, array) -> None:
    """ValueError naming `path` unless `array` holds what prepare packs there: uint8 [n, S, S, 3] square crops."""
    import numpy as np

    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3 or array.shape[1] != array.shape[2]:
        raise ValueError(f"{path}: {array.dtype} {list(array.shape)}, expected uint8 [n, S, S, 3] square crops")
