"""Cache of executed units under ``.kb/cache/``: the cache key and the stored results.

The key is a SHA-256 over everything that can change what a unit prints:

- the source of its code cells, in order (markdown cells and prose around fences are left out,
  so editing them never re-runs anything);
- the folder it runs in, relative to its root, because relative paths resolve against it;
- every project-local module it imports, followed transitively: imports are read with ``ast``
  from the unit and from each module found, and resolved against the unit's folder and the
  project root the way ``sys.path`` would resolve them;
- the files and folders a snippet declares with ``data=``, and its timeout, so that raising the
  timeout of a snippet that timed out runs it again;
- the Python version, the installed torch version and, for snippets that declare ``gpu``,
  whether a GPU is present.

Each entry is a folder ``.kb/cache/<key>/`` holding ``result.json`` (status, error, duration,
timestamp, key) and, when the unit was executed, ``notebook.ipynb`` with its outputs.
jupyter-cache (1.0.1) was considered: its key covers only code cells and kernelspec metadata, it
stores only notebooks whose cells all ran without an error, and it keeps its index in SQLite.
kb needs a wider key and cached failures, so entries are plain folders written atomically.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kb.snippets import RunUnit, gpu_present

__all__ = ["CACHE_FORMAT", "ResultCache", "cache_key", "local_modules"]

CACHE_FORMAT = "kb-run-2"
"""Bumped whenever the key or the record layout changes, so old entries stop matching."""


def _module_candidates(directory: Path, parts: list[str]) -> list[Path]:
    """Return the files that ``import parts`` would load from ``directory``, outermost first."""
    found: list[Path] = []
    current = directory
    for index, part in enumerate(parts):
        package = current / part
        module = current / f"{part}.py"
        if (package / "__init__.py").is_file():
            found.append(package / "__init__.py")
            current = package
        elif module.is_file():
            found.append(module)
            break
        elif package.is_dir() and index < len(parts) - 1:
            current = package  # namespace package: no __init__.py to load
        else:
            break
    return found


def _imported_names(tree: ast.AST, file: Path | None) -> Iterator[tuple[Path | None, list[str]]]:
    """Yield (base folder or None for sys.path, dotted parts) for each import in ``tree``.

    For ``from a import b`` both ``a`` and ``a.b`` are yielded, since ``b`` may be a submodule.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield None, alias.name.split(".")
        elif isinstance(node, ast.ImportFrom):
            module_parts = node.module.split(".") if node.module else []
            base: Path | None = None
            if node.level:
                if file is None:
                    continue  # a relative import in a notebook cell fails at run time anyway
                base = file.parent
                for _ in range(node.level - 1):
                    base = base.parent
            if module_parts:
                yield base, module_parts
            for alias in node.names:
                if alias.name != "*":
                    yield base, [*module_parts, alias.name]


def local_modules(sources: list[str], search_dirs: list[Path], root: Path) -> list[Path]:
    """Return the project-local files that ``sources`` import, followed transitively.

    ``search_dirs`` stand in for ``sys.path`` (the unit's folder, then the project root). Only
    files under ``root`` or a search folder count as local; installed packages are covered by the
    Python and torch versions in the key. Code that fails to parse contributes no imports.
    """
    roots = [root.resolve(), *(directory.resolve() for directory in search_dirs)]
    found: dict[Path, None] = {}
    queue: list[tuple[str, Path | None]] = [(source, None) for source in sources]
    while queue:
        source, file = queue.pop()
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for base, parts in _imported_names(tree, file):
            directories = [base] if base is not None else search_dirs
            for directory in directories:
                candidates = _module_candidates(directory, parts)
                if not candidates:
                    continue
                for candidate in candidates:
                    candidate = candidate.resolve()
                    if candidate in found or not any(candidate.is_relative_to(r) for r in roots):
                        continue
                    found[candidate] = None
                    queue.append((candidate.read_text(encoding="utf-8", errors="replace"), candidate))
                break  # the first folder on the path that has the module wins, as in sys.path
    return sorted(found)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_data(path: Path) -> str:
    """Hash a data file, or every file under a data folder with its relative path."""
    if path.is_file():
        return _hash_file(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode())
            digest.update(_hash_file(file).encode())
        return digest.hexdigest()
    return "missing"


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _label(path: Path, roots: list[Path]) -> str:
    for base in roots:
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return path.as_posix()


def cache_key(unit: RunUnit, root: Path) -> str:
    """Return the hex SHA-256 cache key of ``unit`` run from project ``root``."""
    root = root.resolve()
    search_dirs = [unit.cwd, root]
    code = [cell.source for cell in unit.code_cells]
    modules = local_modules(code, search_dirs, root)
    label_roots = [root, unit.cwd]
    parts: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "kind": unit.kind,
        "folder": _label(unit.cwd, [root]),
        "code": code,
        "timeout": unit.timeout,
        "modules": [[_label(module, label_roots), _hash_file(module)] for module in modules],
        "data": [[_label(item, label_roots), _hash_data(item)] for item in unit.data],
        "python": f"{platform.python_implementation()} {sys.version}",
        "torch": _package_version("torch"),
        "gpu": gpu_present() if unit.gpu != "none" else None,
    }
    encoded = json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


class ResultCache:
    """Folder-per-key store of result records and executed notebooks."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def entry(self, key: str) -> Path:
        return self.directory / key

    def notebook_path(self, key: str) -> Path:
        return self.entry(key) / "notebook.ipynb"

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the stored record for ``key``, or None when there is none or it is unreadable."""
        try:
            record = json.loads((self.entry(key) / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if record.get("key") != key or record.get("format") != CACHE_FORMAT:
            return None
        return record

    def put(self, key: str, record: dict[str, Any], notebook: Path | None) -> None:
        """Store ``record`` and a copy of ``notebook`` under ``key``, replacing any old entry.

        The entry is assembled in a temporary folder and renamed into place, so readers in other
        processes see either the old entry or the complete new one.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.directory))
        try:
            record = {**record, "key": key, "format": CACHE_FORMAT}
            if notebook is not None:
                shutil.copyfile(notebook, staging / "notebook.ipynb")
            (staging / "result.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
            target = self.entry(key)
            if target.exists():
                retired = Path(tempfile.mkdtemp(prefix=".retired-", dir=self.directory))
                os.replace(target, retired / key)
                shutil.rmtree(retired, ignore_errors=True)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold an exclusive lock on ``key`` so that one process executes it at a time."""
        locks = self.directory / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with (locks / f"{key}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
