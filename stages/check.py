"""DVC stage `check`: every parameter of params.yaml validated before any work (a2i/config.py).

It depends on the whole of params.yaml and every other stage depends on its output, so it runs first: a bad
`-S` override fails here in seconds, every problem on its own `error:` line. The output never changes with
the parameters, so a stage re-runs only when its own parameters change.
"""

from a2i.config import check_params
from a2i.io import write_json
from a2i.params import load_params
from a2i.stage import run_stage
from a2i.variants import PARAMS_CHECK


def check() -> None:
    check_params(load_params())
    write_json(PARAMS_CHECK, {"ok": True})


if __name__ == "__main__":
    run_stage(__doc__, check)
