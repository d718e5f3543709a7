"""DVC stage `download`: the real Sub-URMP and pretrained weights, one folder per item in data/download (only their
manifests for the synthetic default)."""

from a2i.config import DownloadConfig, load_section_config
from a2i.data.download import download
from a2i.stage import run_stage
from a2i.variants import DOWNLOADS

if __name__ == "__main__":
    run_stage(__doc__, lambda: download(DOWNLOADS, **load_section_config(DownloadConfig).kwargs()))
