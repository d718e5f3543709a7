"""Sub-URMP: the synthetic stand-in, the download, and the prepared samples.

The names and values the data stages' parameters accept live here, light, for a2i.config.
"""

import math
import numbers
from pathlib import PurePosixPath
from urllib.parse import urlparse

DOWNLOAD_ITEMS = ("suburmp", "audioclip", "inception")
DOWNLOAD_SOURCES = ("url", "local")  # fetch `items` from their URLs | validate a folder filled by hand
ON_BAD_FILE = ("error", "skip")  # prepare: raise at the first bad file | record it and go on
EDGE_SECONDS = 0.8  # noise-only lead-in and tail of every synthetic performance
SILENCE_PEAK = 450  # the thesis' int16 peak under which prepare drops a sample as silent (4.2.1)

# prepare.crop and prepare.trim values: what a2i.config checks in params.yaml and a2i.data.prepare in a call.
BOX = "[left, top, right, bottom] with 0 <= left < right <= 1 and 0 <= top < bottom <= 1"
SPAN = "[head_s, tail_s], the seconds cut at the start and at the end, both >= 0"


def url_file_name(url: str) -> str:
    """The file a download URL names, where `download` saves it: the last part of its path ('' if none)."""
    path = urlparse(url).path
    return "" if path.endswith("/") else PurePosixPath(path).name


def is_box(value) -> bool:
    """A crop box in frame fractions (`BOX`)."""
    return _numbers(value, 4) and 0 <= value[0] < value[2] <= 1 and 0 <= value[1] < value[3] <= 1


def is_span(value) -> bool:
    """A trim span in seconds (`SPAN`)."""
    return _numbers(value, 2) and min(value) >= 0


def _numbers(value, count: int) -> bool:
    """A list (or tuple) of `count` finite numbers; YAML's true/false load as bools, which are not numbers here."""
    return (isinstance(value, (list, tuple)) and len(value) == count
            and all(isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) for x in value))
