"""DVC stage `finetune`: contrastive fine-tuning of the AudioCLIP audio head for one (alignment, length) cell."""

from a2i.audioclip.finetune import run_finetune
from a2i.config import FinetuneConfig, load_section_config
from a2i.stage import Option, run_stage

if __name__ == "__main__":
    run_stage(__doc__, lambda embedding: run_finetune(embedding, load_section_config(FinetuneConfig)),
              Option("embedding", "<alignment>-<length>s, e.g. text-1s"))
