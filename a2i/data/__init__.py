"""Sub-URMP: the synthetic stand-in, the download, and the prepared samples.

The names the data stages' parameters accept live here, light, for a2i.config.
"""

DOWNLOAD_ITEMS = ("suburmp", "audioclip", "inception")
DOWNLOAD_SOURCES = ("url", "local")  # fetch `items` from their URLs | validate a folder filled by hand
ON_BAD_FILE = ("error", "skip")  # prepare: raise at the first bad file | record it and go on
EDGE_SECONDS = 0.8  # noise-only lead-in and tail of every synthetic performance
