"""Load a vault from disk and resolve every link target to a file, as Obsidian does.

Resolution order for a target ``T`` written in note ``S``:

1. An empty target (``[[#Heading]]``) is ``S`` itself.
2. Markdown links starting with ``./`` or ``../`` are relative to the folder of ``S``, and
   ``/path`` is relative to the vault root. Other Markdown destinations are tried relative to
   ``S`` first, then like a wikilink.
3. A target with a folder (``week1/Summary``) is ``T`` or ``T.md`` as a path from the vault
   root, ignoring case and Unicode normalisation, or else any file whose path ends with it.
4. A bare name matches every file of that name, or that name plus ``.md``, anywhere. One match
   resolves; several are ambiguous: the file in the same folder as ``S`` wins, then the
   shallowest path, then alphabetical order, and the link records all candidates.
5. Anything else is unresolved and records the note Obsidian would create on click: ``T.md``
   at the vault root, or at the folder written in the link.

Attachments must be linked with their extension, so ``[[lecture]]`` never finds
``lecture.pdf``. Aliases never resolve links.
"""

from __future__ import annotations

import codecs
import gc
import logging
import os
import posixpath
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kb.model import Link, Note, Problem
from kb.parse import ATTACHMENT_EXTENSIONS, parse_note

__all__ = ["Resolution", "Vault", "load_vault"]

log = logging.getLogger("kb")

# Notes above this size are still read, with a warning; above the hard limit they are skipped.
LARGE_NOTE_BYTES = 5 * 1024 * 1024
MAX_NOTE_BYTES = 64 * 1024 * 1024

_SKIPPED_DIRECTORIES = {"node_modules", "__pycache__"}
_BYTE_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
# Byte order marks of the Unicode encodings other than UTF-8, UTF-32 first because its
# little-endian mark starts with UTF-16's.
_UNICODE_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]


def _key(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


def _folder(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


@dataclass(frozen=True, slots=True)
class Resolution:
    target: str | None
    ambiguous: bool = False
    candidates: tuple[str, ...] = ()
    would_create: str | None = None


@dataclass
class Vault:
    """All files of a vault, its parsed notes, and the index that resolves link targets."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    """Vault-relative path (NFC, forward slashes) to the file on disk."""
    notes: dict[str, Note] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    """Problems found while loading: unreadable files, bad front matter, symlinks."""

    def __post_init__(self) -> None:
        self._by_path: dict[str, str] = {}
        self._by_name: dict[str, list[str]] = {}
        # Resolutions keyed by target text, syntax and the folder of the linking note (None
        # where the folder cannot change the result), because resolve() reads the linking
        # note only through its folder. Empty targets are not cached.
        self._resolutions: dict[tuple[str, str, str | None], Resolution] = {}

    # Loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, root: Path | str, extra_roots: dict[str, Path] | None = None) -> "Vault":
        """Read every file under ``root`` and parse every ``.md`` note.

        ``extra_roots`` mounts other folders into the vault, e.g. ``{"snippets": Path(...)}``
        makes ``snippets/attention.py`` linkable as ``[[attention.py]]``.
        Never raises for a bad file: it is reported in :attr:`problems` and skipped.
        """
        vault = cls(root=Path(root))
        if not vault.root.is_dir():
            raise FileNotFoundError(f"vault folder not found: {vault.root}")
        vault._scan(vault.root, "")
        for prefix, folder in (extra_roots or {}).items():
            if Path(folder).is_dir():
                if any(path.startswith(prefix + "/") for path in vault.files):
                    vault.problems.append(
                        Problem(prefix, None, "warning", "mounted-folder-clash",
                                f"the vault has its own '{prefix}/' folder; kb's '{prefix}/' "
                                "folder hides it. Rename one of them")
                    )
                vault._scan(Path(folder), prefix)
        vault._build_index()

        # Parsing allocates millions of small records that form no reference cycles, so the
        # cyclic garbage collector only adds passes that grow with the vault: pause it.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for path in sorted(vault.files):
                if path.lower().endswith(".md"):
                    note = vault._read_note(path)
                    if note is not None:
                        vault.notes[path] = note
                        vault.problems.extend(note.problems)
            for note in vault.notes.values():
                for link in note.links:
                    vault._resolve_link(link)
        finally:
            if collecting:
                gc.enable()
        return vault

    def _scan(self, base: Path, prefix: str) -> None:
        real_base = os.path.realpath(base)
        for directory, subdirectories, filenames in os.walk(base, followlinks=False):
            relative_dir = os.path.relpath(directory, base)
            relative_dir = "" if relative_dir == "." else relative_dir.replace(os.sep, "/")
            kept = []
            for name in sorted(subdirectories):
                if name.startswith(".") or name in _SKIPPED_DIRECTORIES:
                    continue
                full = os.path.join(directory, name)
                if os.path.islink(full):
                    self._report_symlink(full, real_base, _join(prefix, relative_dir, name), folder=True)
                    continue
                kept.append(name)
            subdirectories[:] = kept
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                full = os.path.join(directory, name)
                relative = _join(prefix, relative_dir, name)
                if os.path.islink(full) and not self._symlink_inside(full, real_base, relative):
                    continue
                self.files[unicodedata.normalize("NFC", relative)] = Path(full)

    def _symlink_inside(self, full: str, real_base: str, relative: str) -> bool:
        real = os.path.realpath(full)
        if os.path.commonpath([real, real_base]) == real_base and os.path.isfile(real):
            return True
        self._report_symlink(full, real_base, relative, folder=False)
        return False

    def _report_symlink(self, full: str, real_base: str, relative: str, folder: bool) -> None:
        real = os.path.realpath(full)
        inside = os.path.commonpath([real, real_base]) == real_base
        what = "folder" if folder else "file"
        if folder and inside:
            reason = "symbolic links to folders are not followed (they can form loops)"
        elif not os.path.exists(real):
            reason = "it is a broken symbolic link or a symbolic link loop"
        else:
            reason = "it is a symbolic link that points outside the vault"
        self.problems.append(
            Problem(relative, None, "warning", "symlink-skipped",
                    f"{what} skipped: {reason}; copy the {what} into the vault to include it")
        )

    def _read_note(self, path: str) -> Note | None:
        file = self.files[path]
        try:
            size = file.stat().st_size
            if size > MAX_NOTE_BYTES:
                self.problems.append(
                    Problem(path, None, "warning", "note-too-large",
                            f"note skipped: {size / 1e6:.1f} MB is over the "
                            f"{MAX_NOTE_BYTES / 1e6:.0f} MB limit; split it into smaller notes")
                )
                return None
            data = file.read_bytes()
        except FileNotFoundError:
            self.problems.append(
                Problem(path, None, "warning", "unreadable-file",
                        "the file was removed or renamed while kb read the vault; run kb "
                        "again to read the vault as it is now")
            )
            return None
        except OSError as error:
            self.problems.append(
                Problem(path, None, "warning", "unreadable-file",
                        f"cannot read the file ({error.strerror}); check its permissions")
            )
            return None

        for bom, encoding in _UNICODE_BOMS:
            if data.startswith(bom):
                # Windows editors save "Unicode" text as UTF-16 with a byte order mark; its
                # NUL bytes would otherwise make the note look binary.
                self.problems.append(
                    Problem(path, 1, "warning", "invalid-encoding",
                            f"the note is saved as {encoding.upper()}, not UTF-8; kb reads it, "
                            "but Obsidian and MkDocs expect UTF-8, so re-save it as UTF-8")
                )
                data = data[len(bom):].decode(encoding, errors="replace").encode("utf-8")
                break
        if b"\x00" in data[:8192]:
            self.problems.append(
                Problem(path, None, "warning", "binary-note",
                        "the file ends in .md but holds binary data (NUL bytes); if it is "
                        "text, re-save it as UTF-8, else rename it with its real extension")
            )
            return None
        problems: list[Problem] = []
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = len(_BYTE_LINE_BREAK.findall(data, 0, error.start)) + 1
            problems.append(
                Problem(path, line, "warning", "invalid-encoding",
                        f"byte 0x{data[error.start]:02x} is not valid UTF-8; re-save the note "
                        "as UTF-8 (invalid bytes are shown as U+FFFD)")
            )
            text = data.decode("utf-8", errors="replace")
        if text.startswith("\ufeff"):
            text = text[1:]
        if size > LARGE_NOTE_BYTES:
            problems.append(
                Problem(path, None, "warning", "large-note",
                        f"note is {size / 1e6:.1f} MB; notes this large slow every build, so "
                        "consider splitting it")
            )
        if not text.strip():
            problems.append(
                Problem(path, None, "info", "empty-note",
                        "note is empty; write something in it or delete it")
            )
        note = parse_note(text, path)
        note.problems[:0] = problems
        return note

    # Resolution --------------------------------------------------------------------------

    def _build_index(self) -> None:
        self._resolutions.clear()
        for path in self.files:
            self._by_path[_key(path)] = path
            self._by_name.setdefault(_key(path.rsplit("/", 1)[-1]), []).append(path)

    def resolve(self, target_text: str, source: str, syntax: str = "wikilink") -> Resolution:
        """Resolve a link target written in note ``source`` (see the module docstring)."""
        target = unicodedata.normalize("NFC", target_text.strip())
        if not target:
            return Resolution(source)

        if syntax == "markdown":
            if target.startswith("/"):
                target = target.lstrip("/")
            else:
                relative = posixpath.normpath(posixpath.join(_folder(source), target))
                if target.startswith(("./", "../")) or relative.startswith("../"):
                    if relative.startswith("../") or relative == "..":
                        return Resolution(None, would_create=None)
                    return self._exact(relative) or Resolution(
                        None, would_create=_would_create(relative)
                    )
                found = self._exact(relative)
                if found:
                    return found
        elif target.startswith("/"):
            target = target.lstrip("/")

        if "/" in target:
            found = self._exact(target)
            if found:
                return found

        matches = self._matches(target)
        if len(matches) == 1:
            return Resolution(matches[0])
        if matches:
            folder = _folder(source)
            ranked = sorted(
                matches,
                key=lambda path: (_folder(path) != folder, path.count("/"), path.casefold()),
            )
            return Resolution(ranked[0], True, tuple(sorted(matches)))
        return Resolution(None, would_create=_would_create(target))

    def _exact(self, target: str) -> Resolution | None:
        for candidate in (target, target + ".md"):
            path = self._by_path.get(_key(candidate))
            if path is not None:
                return Resolution(path)
        return None

    def _matches(self, target: str) -> list[str]:
        name = target.rsplit("/", 1)[-1]
        keys = {_key(name), _key(name + ".md")}
        found = [path for key in keys for path in self._by_name.get(key, [])]
        if "/" in target:
            suffixes = (_key("/" + target), _key("/" + target + ".md"))
            found = [path for path in found if _key("/" + path).endswith(suffixes)]
        return sorted(set(found))

    def _resolve_link(self, link: Link) -> None:
        # Only Markdown links and ambiguous names depend on the linking note, and only through
        # its folder; every other target resolves the same from any note.
        syntax = "markdown" if link.syntax == "markdown" else "wikilink"
        folder = _folder(link.source)
        key = (link.target_text, syntax, None if syntax == "wikilink" else folder)
        resolution = self._resolutions.get(key)
        if resolution is None:
            resolution = self._resolutions.get((link.target_text, syntax, folder))
        if resolution is None:
            resolution = self.resolve(link.target_text, link.source, link.syntax)
            if link.target_text.strip():
                if resolution.ambiguous:
                    key = (link.target_text, syntax, folder)
                self._resolutions[key] = resolution
        link.target = resolution.target
        link.ambiguous = resolution.ambiguous
        link.candidates = list(resolution.candidates)
        link.would_create = resolution.would_create
        link.self_link = resolution.target == link.source
        target_note = self.notes.get(resolution.target) if resolution.target else None
        if target_note is not None:
            if link.heading:
                link.heading_exists = _heading_chain_exists(target_note, link.heading)
            if link.block:
                link.block_exists = any(block.id == link.block for block in target_note.blocks)

    # Queries -----------------------------------------------------------------------------

    @property
    def links(self) -> list[Link]:
        """Every link occurrence of every note, notes in path order."""
        return [link for path in sorted(self.notes) for link in self.notes[path].links]

    def link_problems(self) -> list[Problem]:
        """Problems with links: unresolved, ambiguous, missing headings and blocks."""
        problems = []
        suggestion = self._suggester()
        for link in self.links:
            if link.target is None and link.would_create is None:
                problems.append(
                    Problem(link.source, link.line, "warning", "link-outside-vault",
                            f"{link.raw} points outside the vault; kb never follows it. "
                            "Link a note inside the vault")
                )
            elif link.target is None and (dot_part := _dot_part(link.would_create)):
                # Creating the file would not help, because _scan skips every dot file.
                problems.append(
                    Problem(link.source, link.line, "warning", "unresolved-link",
                            f"{link.raw}: kb skips files and folders whose name starts with a "
                            f"dot, so it cannot link to '{link.would_create}'; rename "
                            f"'{dot_part}' so that it does not start with "
                            "a dot, and fix the link")
                )
            elif link.target is None:
                problems.append(
                    Problem(link.source, link.line, "warning", "unresolved-link",
                            f"{link.raw}: no note or file named '{link.target_text}'"
                            f"{suggestion(link.target_text)}; create "
                            f"'{link.would_create}' or fix the link")
                )
            if link.ambiguous:
                problems.append(
                    Problem(link.source, link.line, "warning", "ambiguous-link",
                            f"{link.raw} matches {len(link.candidates)} files "
                            f"({', '.join(link.candidates)}); kb uses '{link.target}'. Write "
                            "the folder path to choose one")
                )
            if link.heading_exists is False:
                problems.append(
                    Problem(link.source, link.line, "warning", "missing-heading",
                            f"{link.raw}: '{link.target}' has no heading "
                            f"'{' > '.join(link.heading or [])}'; fix the heading text")
                )
            if link.block_exists is False:
                problems.append(
                    Problem(link.source, link.line, "warning", "missing-block",
                            f"{link.raw}: '{link.target}' has no block '^{link.block}'; add "
                            f"' ^{link.block}' at the end of the paragraph")
                )
        return problems

    def _suggester(self) -> Callable[[str], str]:
        """Return a function that gives the "did you mean" hint for an unresolved target.

        The note names are collected once and each target name is looked up once, because
        difflib compares a name with every note: a vault with hundreds of unresolved links
        took seconds here.
        """
        import difflib

        names: dict[str, str] = {}
        for note in self.notes.values():
            names.setdefault(note.name.casefold(), note.name)
        choices = list(names)
        hints: dict[str, str] = {}

        def suggestion(target: str) -> str:
            name = target.rsplit("/", 1)[-1].casefold()
            if name not in hints:
                close = difflib.get_close_matches(name, choices, n=1, cutoff=0.8)
                hints[name] = f" (did you mean [[{names[close[0]]}]]?)" if close else ""
            return hints[name]

        return suggestion

    def note_for(self, query: str) -> Note | None:
        """Find a note by name, path or alias, ignoring case, as a topic argument."""
        resolution = self.resolve(query, "", "wikilink")
        if resolution.target in self.notes:
            return self.notes[resolution.target]
        wanted = _key(query)
        for note in self.notes.values():
            if any(_key(alias) == wanted for alias in note.aliases):
                return note
        return None

    def suggestions(self, query: str, n: int = 5) -> list[str]:
        import difflib

        names = {note.name: path for path, note in self.notes.items()}
        for path, note in self.notes.items():
            for alias in note.aliases:
                names.setdefault(alias, path)
        by_fold = {name.casefold(): name for name in names}
        close = difflib.get_close_matches(query.casefold(), list(by_fold), n=n, cutoff=0.5)
        partial = [fold for fold in by_fold if query.casefold() in fold and fold not in close]
        return [by_fold[fold] for fold in (close + sorted(partial))[:n]]


def _heading_chain_exists(note: Note, chain: list[str]) -> bool:
    """True when the headings of ``chain`` appear in ``note`` in that order (case ignored)."""
    position = 0
    texts = [heading.text.casefold() for heading in note.headings]
    for segment in chain:
        wanted = segment.casefold()
        while position < len(texts) and texts[position] != wanted:
            position += 1
        if position == len(texts):
            return False
        position += 1
    return True


def _dot_part(path: str) -> str | None:
    """Return the first folder or file name of ``path`` that starts with a dot, if any.

    ``.`` and ``..`` do not count, because they name a folder relative to another.
    """
    return next(
        (part for part in path.split("/") if part.startswith(".") and part not in (".", "..")),
        None,
    )


def _would_create(target: str) -> str:
    extension = target.rsplit(".", 1)[-1].lower() if "." in target.rsplit("/", 1)[-1] else ""
    if extension == "md" or extension in ATTACHMENT_EXTENSIONS:
        return target
    return target + ".md"


def _join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


def load_vault(root: Path | str, extra_roots: dict[str, Path] | None = None) -> Vault:
    """Load the vault at ``root``; shorthand for :meth:`Vault.load`."""
    return Vault.load(root, extra_roots)
