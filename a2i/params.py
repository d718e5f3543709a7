"""Reading `params.yaml` and composing it from the Hydra groups in `conf/`.

`dvc exp run` composes `conf/` into `params.yaml` itself; `dvc repro` never does, so the committed
`params.yaml` must equal the composition of `conf/` (a test checks it; `a2i params` rewrites it).
Every stage reads only its own top-level section. Composing acts on the checkout of the current directory
(the nearest folder up from it holding `dvc.yaml`), never on the folder the package is installed from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ParamsError(SystemExit):
    """A missing or malformed parameter: one line naming the key, non-zero exit."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole `params.yaml` (the report's recipe card diffs it against the thesis table)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found (run from the repository root)")
    return _read_mapping(path)


def _read_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path` (empty: {}); bad YAML or another kind of document is one line naming the file."""
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise _not_utf8(error, path) from None
    except yaml.YAMLError as error:
        raise _invalid_yaml(error, path) from None
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ParamsError(f"{path} holds a {type(params).__name__}, not a mapping of sections")
    return params


def _invalid_yaml(error: yaml.YAMLError, path: Path | str) -> ParamsError:
    """One line naming the file (`path`, or the one the parser marked) and where it breaks."""
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    reason = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    return ParamsError(f"{path} is not valid YAML{where}: {reason}")


def _not_utf8(error: UnicodeDecodeError, path: Path | str) -> ParamsError:
    return ParamsError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})")


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


def find_repo(start: str | Path = ".") -> Path:
    """The checkout holding `start`: the nearest folder at or above it with a `dvc.yaml`."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise ParamsError(f"no dvc.yaml in {start} or any folder above it: run this inside an a2i checkout")


def compose(conf_dir: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose `conf/config.yaml` (default: the current checkout's) with Hydra exactly as `dvc exp run` does
    (resolved, plain containers)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    conf_dir = Path(conf_dir).resolve() if conf_dir is not None else find_repo() / "conf"
    if not (conf_dir / "config.yaml").is_file():
        raise ParamsError(f"{conf_dir / 'config.yaml'} not found: the Hydra groups params.yaml is composed from")
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=overrides or [])
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as error:  # a bad override or group file: its first line
        raise ParamsError(f"{conf_dir}: {str(error).strip().splitlines()[0]}") from None
    except yaml.YAMLError as error:  # a group file that is no YAML: the parser marks which
        mark = getattr(error, "problem_mark", None)
        raise _invalid_yaml(error, mark.name if mark is not None else conf_dir) from None
    except UnicodeDecodeError as error:  # Hydra does not say which file: the first that does not decode
        raise _not_utf8(error, _first_undecodable(conf_dir) or conf_dir) from None


def _first_undecodable(conf_dir: Path) -> Path | None:
    for path in sorted(conf_dir.rglob("*.yaml")):
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            return path
    return None


def committed(path: str | Path | None = None) -> dict[str, Any]:
    """The current checkout's params.yaml (or `path`)."""
    path = Path(path) if path is not None else find_repo() / "params.yaml"
    if not path.is_file():
        raise ParamsError(f"{path} not found: run `a2i params` to compose it from conf/")
    return _read_mapping(path)


def dump(params: dict[str, Any]) -> str:
    return yaml.safe_dump(params, sort_keys=False, default_flow_style=None, width=110)


def write_params(path: str | Path | None = None, overrides: list[str] | None = None) -> Path:
    """Write the composition of conf/ beside it as params.yaml (default: the current checkout's); returns the path.
    The composition is validated first, as the `check` stage validates it: a2i.config.ConfigError, nothing written."""
    from a2i.config import check_params
    from a2i.io import write_text

    path = Path(path) if path is not None else find_repo() / "params.yaml"
    composed = compose(path.parent / "conf", overrides)
    check_params(composed)
    write_text(path, dump(composed))
    return path
