"""DVC stage `embed`: embed every prepared sample with one cell's fine-tuned audio head."""

from a2i.audioclip.embed import run_embed
from a2i.config import EmbedConfig, load_section_config
from a2i.stage import Option, run_stage

if __name__ == "__main__":
    run_stage(__doc__, lambda embedding: run_embed(embedding, load_section_config(EmbedConfig)),
              Option("embedding", "<alignment>-<length>s, e.g. text-1s"))
