"""DVC stage `finetune`: contrastive fine-tuning of the AudioCLIP audio head for one (alignment, length) cell."""

from a2i.audioclip.finetune import run_finetune
from a2i.params import load_section
from a2i.stage import Option, run_stage

if __name__ == "__main__":
    run_stage(__doc__, lambda embedding: run_finetune(embedding, load_section("finetune")),
              Option("embedding", "<alignment>-<length>s, e.g. text-1s"))
