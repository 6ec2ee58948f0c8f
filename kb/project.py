"""Where a kb project keeps its vault, snippets and cache.

A project is the folder that holds ``mkdocs.yml``; its vault is MkDocs' ``docs_dir``
(``docs/`` by default), its runnable code lives in ``snippets/`` beside it, and kb's
cache and state live in ``.kb/`` (git-ignored). A folder passed with ``--vault`` that is not
the project's own vault is a *foreign* vault: kb reads it but runs none of its code unless
asked with ``--trust``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml

from kb.vault import Vault

__all__ = ["Project"]


class _IgnoreTagsLoader(yaml.SafeLoader):
    """Safe loader that reads MkDocs' ``!!python/name:`` tags as plain strings, never as code."""


_IgnoreTagsLoader.add_multi_constructor(
    "", lambda loader, suffix, node: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
)


@dataclass
class Project:
    root: Path
    vault_dir: Path
    foreign: bool = False
    """True when the vault is not this project's own ``docs_dir``."""

    @property
    def snippets_dir(self) -> Path:
        return self.root / "snippets"

    @property
    def cache_dir(self) -> Path:
        """Folder for kb's cache and state: run results, quiz schedule, unsaved text.

        kb never writes into a foreign vault. When the project's ``.kb/`` would lie inside one
        (``--vault .`` in a project, or a vault with no ``mkdocs.yml`` above it), the cache goes
        to ``$XDG_CACHE_HOME/kb/vaults/HASH`` (``~/.cache`` when unset), HASH being the first 16
        hex digits of the SHA-256 of the vault's resolved path.
        """
        local = self.root / ".kb"
        vault = self.vault_dir.resolve()
        if not self.foreign or not local.resolve().is_relative_to(vault):
            return local
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        digest = hashlib.sha256(os.fsencode(vault)).hexdigest()[:16]
        return Path(base) / "kb" / "vaults" / digest

    @classmethod
    def discover(cls, start: Path | None = None, vault: Path | str | None = None) -> "Project":
        """Find the project around ``start`` (default: the working directory).

        With ``vault`` given, that folder is the vault; it counts as the project's own when it
        is the project's ``docs_dir``.
        """
        start = Path(start or Path.cwd()).resolve()
        root = _find_root(Path(vault).resolve() if vault else start)
        own_vault = root / _docs_dir(root) if root else None
        if vault is None:
            if root is None:
                raise FileNotFoundError(
                    f"no mkdocs.yml found in {start} or its parents; run kb inside a kb "
                    "project or pass --vault DIR"
                )
            return cls(root=root, vault_dir=own_vault)
        vault_path = Path(vault).resolve()
        if not vault_path.is_dir():
            raise FileNotFoundError(f"vault folder not found: {vault}")
        if root is not None and own_vault is not None and own_vault.resolve() == vault_path:
            return cls(root=root, vault_dir=vault_path)
        return cls(root=root or vault_path, vault_dir=vault_path, foreign=True)

    @cached_property
    def vault(self) -> Vault:
        extra = {} if self.foreign else {"snippets": self.snippets_dir}
        return Vault.load(self.vault_dir, extra_roots=extra)


def _find_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / "mkdocs.yml").is_file():
            return folder
    return None


def _docs_dir(root: Path) -> str:
    try:
        config = yaml.load((root / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_IgnoreTagsLoader)
    except (OSError, yaml.YAMLError):
        return "docs"
    if isinstance(config, dict) and isinstance(config.get("docs_dir"), str):
        return config["docs_dir"]
    return "docs"
