"""Reading `params.yaml` and composing it from the Hydra groups in `conf/`.

`dvc exp run` composes `conf/` into `params.yaml` itself; `dvc repro` never does, so the committed
`params.yaml` must equal the composition of `conf/` (a test checks it; `a2i params compose` rewrites it).
Every stage reads only its own top-level section.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


class ParamsError(SystemExit):
    """A missing or malformed parameter: one line naming the key, non-zero exit."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole `params.yaml` (the report's recipe card diffs it against the thesis table)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found (run from the repository root)")
    return yaml.safe_load(path.read_text()) or {}


def load_section(section: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    """Return `params.yaml[section]` as a plain dict."""
    params = load_params(path)
    if section not in params:
        raise ParamsError(f"{path} has no section '{section}'")
    return params[section]


def require(section: dict[str, Any], key: str, name: str) -> Any:
    """`section[key]`, or a one-line error naming `name.key`."""
    if key not in section:
        raise ParamsError(f"parameter '{name}.{key}' is missing from params.yaml")
    return section[key]


def compose(conf_dir: str | Path = REPO / "conf", overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose `conf/config.yaml` with Hydra exactly as `dvc exp run` does (resolved, plain containers)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)


def committed(path: str | Path = REPO / "params.yaml") -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def dump(params: dict[str, Any]) -> str:
    return yaml.safe_dump(params, sort_keys=False, default_flow_style=None, width=110)


def write_params(path: str | Path = REPO / "params.yaml", overrides: list[str] | None = None) -> None:
    from a2i.io import write_text

    write_text(path, dump(compose(overrides=overrides)))


if __name__ == "__main__":  # python -m a2i.params [overrides...]
    write_params(overrides=sys.argv[1:])
