"""The code a module runs: its import closure inside `a2i`.

DVC re-runs a stage when a file of its closure changes (`tests/test_dvc_deps.py` keeps dvc.yaml's deps equal to
it), and the training resumes a persisted checkpoint only while the digest of its closure is unchanged
(`code_digest`): a change to the training code retrains instead of keeping the numbers of the code before it.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the folder that holds the a2i package (the repository)
# Plumbing that cannot change what a stage computes: declaring it would re-run the whole pipeline for nothing.
PLUMBING = {
    "a2i/__init__.py": "package marker, version, and the CPU kernel pin (a2i/kernels.py), which makes other CPUs "
                       "compute what the reference machine computes, as the thread count does",
    "a2i/stage.py": "command line and one-line errors of the stage scripts",
    "a2i/params.py": "reads params.yaml (the values themselves are tracked as params)",
    "a2i/config.py": "validates params.yaml (the values themselves are tracked as params)",
    "a2i/devices.py": "device and thread choice",
    "a2i/io.py": "atomic writes",
}


def module_file(name: str) -> Path | None:
    """The file of an `a2i` module or package, None outside `a2i`."""
    if name != "a2i" and not name.startswith("a2i."):
        return None
    path = ROOT / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at module level or inside functions (lazy imports run too)."""
    names = set()
    package = ".".join(path.resolve().relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], base]).strip(".")
            names.add(base)
            names |= {lazy_export(f"{base}.{alias.name}") for alias in node.names}  # `from a2i.x import module`
    return names


def lazy_export(name: str) -> str:
    """The module that defines `name`, where it is a name a package resolves on first use (PEP 562, its
    `__init__.py`'s `_EXPORTS`, as a2i.audioclip's); else `name`."""
    package, _, attribute = name.rpartition(".")
    init = module_file(package)
    if init is None or init.name != "__init__.py":
        return name
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            exports = ast.literal_eval(node.value)
            return f"{package}.{exports[attribute]}" if attribute in exports else name
    return name


def closure(script: Path, through_plumbing: bool = False) -> set[str]:
    """ROOT-relative files of `a2i` that `script` runs, with the `__init__.py` of every package on the way;
    what only the plumbing of PLUMBING imports is left out unless `through_plumbing`."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        for name in imported_modules(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                found = module_file(".".join(parts[:i]))
                if found and found not in seen:
                    seen.add(found)
                    if through_plumbing or str(found.relative_to(ROOT)) not in PLUMBING:
                        todo.append(found)
    return {str(path.relative_to(ROOT)) for path in seen}


def code_digest(module: str | Path) -> str:
    """sha256 of the source of the `a2i` module file `module` and of its closure but the plumbing: the files
    whose change re-runs its DVC stage."""
    module = Path(module).resolve()
    files = sorted({str(module.relative_to(ROOT)), *closure(module)} - PLUMBING.keys())
    digest = hashlib.sha256()
    for file in files:
        source = (ROOT / file).read_bytes()
        digest.update(f"{file}\0{len(source)}\0".encode() + source)
    return digest.hexdigest()
