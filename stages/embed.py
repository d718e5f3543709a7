"""DVC stage `embed`: embed every prepared sample with one cell's fine-tuned audio head."""

from a2i.audioclip.embed import run_embed
from a2i.params import load_section
from a2i.stage import Option, run_stage

if __name__ == "__main__":
    run_stage(__doc__, lambda embedding: run_embed(embedding, load_section("embed")),
              Option("embedding", "<alignment>-<length>s, e.g. text-1s"))
