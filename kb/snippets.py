"""Runnable units: snippet files and the Python fences of notes.

A snippet is a ``snippets/*.py`` file in jupytext's percent format. Line 1 is a header comment::

    # kb: timeout=SECONDS [gpu=none|optional|required] [data=path,path]

``timeout`` bounds the wall time of all its cells together. ``gpu=optional`` declares that the
code uses a GPU when one is present and runs on the CPU otherwise, and ``gpu=required`` skips
the snippet on a machine without a GPU. ``data`` lists files or folders, relative to the
snippet's folder, that the snippet reads, so that editing them re-runs it. Cells start at ``# %%`` lines, and the
text after ``# %%`` is the cell title.

A fence in a note is runnable when its language is ``python`` (or ``py``, ``python3``). Words
after the language change how it runs:

- ``skip``: the fence is not executed and is reported as skipped, never as passed. Any further
  words are the reason shown.
- ``continue``: the fence runs in the same kernel as the previous fence of the note, after it,
  so it sees that fence's names. A chain of ``continue`` fences forms one unit. A ``continue``
  fence after a skipped fence is skipped too, and a ``continue`` fence with no previous fence
  starts a unit of its own.

Each unit runs in its own kernel. A snippet runs in its own folder, a fence runs in the folder of
its note, and the project root is on ``sys.path`` so ``from snippets.attention import ...``
works everywhere.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import jupytext

if TYPE_CHECKING:
    from kb.model import CodeBlock, Note
    from kb.vault import Vault

__all__ = [
    "Cell",
    "RUNNABLE_LANGS",
    "RunUnit",
    "SnippetError",
    "SnippetHeader",
    "parse_header",
    "note_units",
    "read_snippet",
    "snippet_files",
    "snippet_units",
    "units_from_note",
]

RUNNABLE_LANGS = frozenset({"python", "py", "python3"})
DEFAULT_TIMEOUT = 120.0
"""Seconds a snippet without a header, and every fence, may run."""

HEADER_PREFIX = "# kb:"
GPU_MODES = ("none", "optional", "required")

# The percent format reads "# %%" comment lines as cell markers. Magics stay commented out, so a
# snippet executes exactly the Python that `python snippet.py` would execute.
PERCENT_FORMAT = {"extension": ".py", "format_name": "percent", "comment_magics": False}


class SnippetError(ValueError):
    """A snippet file or fence that cannot be turned into a runnable unit."""


@dataclass(frozen=True, slots=True)
class SnippetHeader:
    timeout: float = DEFAULT_TIMEOUT
    """Seconds all cells together may run before the whole process tree is killed."""
    gpu: Literal["none", "optional", "required"] = "none"
    data: tuple[str, ...] = ()
    """Data files or folders, relative to the snippet's folder."""


@dataclass(slots=True)
class Cell:
    source: str
    line: int
    """1-based line of the cell's first source line in its file."""
    kind: Literal["code", "markdown"] = "code"
    title: str | None = None


@dataclass(slots=True)
class RunUnit:
    """Code that executes in one kernel: a whole snippet, or a chain of fences of one note."""

    kind: Literal["snippet", "fence"]
    path: Path
    """Absolute path of the snippet or note."""
    label: str
    """Path shown in reports: relative to the project root, or to the vault for fences."""
    line: int
    """Line reported for the unit as a whole: 1 for a snippet, the first fence line for a note."""
    cwd: Path
    cells: list[Cell]
    timeout: float = DEFAULT_TIMEOUT
    gpu: str = "none"
    data: list[Path] = field(default_factory=list)
    skip_reason: str | None = None

    @property
    def name(self) -> str:
        """Unit name in reports: ``snippets/attention.py`` or ``ml/Loss.md:12``."""
        return self.label if self.kind == "snippet" else f"{self.label}:{self.line}"

    @property
    def code_cells(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.kind == "code"]

    def location_of(self, cell_index: int, line_in_cell: int) -> int:
        """Return the file line of 1-based ``line_in_cell`` of code cell ``cell_index``."""
        return self.code_cells[cell_index].line + line_in_cell - 1


def parse_header(line: str, where: str = "") -> SnippetHeader | None:
    """Parse a ``# kb: key=value ...`` header line; return None when the line is no header.

    Raises SnippetError on an unknown key or an invalid value, naming ``where``.
    """
    stripped = line.strip()
    if not stripped.startswith(HEADER_PREFIX):
        return None
    timeout = DEFAULT_TIMEOUT
    gpu = "none"
    data: tuple[str, ...] = ()
    for word in stripped[len(HEADER_PREFIX) :].split():
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise SnippetError(f"{where}: invalid header word {word!r}: expected key=value")
        if key == "timeout":
            try:
                timeout = float(value)
            except ValueError:
                raise SnippetError(f"{where}: invalid timeout {value!r}: expected seconds") from None
            if timeout <= 0:
                raise SnippetError(f"{where}: invalid timeout {value!r}: must be positive")
        elif key == "gpu":
            if value not in GPU_MODES:
                raise SnippetError(f"{where}: invalid gpu {value!r}: expected one of {GPU_MODES}")
            gpu = value
        elif key == "data":
            data = tuple(part for part in value.split(",") if part)
        else:
            raise SnippetError(f"{where}: unknown header key {key!r}: expected timeout, gpu or data")
    return SnippetHeader(timeout=timeout, gpu=gpu, data=data)  # type: ignore[arg-type]


def _locate_code_cells(lines: list[str], cells: list[Cell]) -> None:
    """Set each code cell's ``line`` by finding its first source line in the file, in order."""
    position = 0
    for cell in cells:
        if cell.kind != "code":
            continue
        source_lines = cell.source.splitlines()
        first = source_lines[0]
        for index in range(position, len(lines)):
            if lines[index] == first:
                cell.line = index + 1
                position = index + len(source_lines)
                break


def _read_titles_from_markers(lines: list[str], cells: list[Cell]) -> None:
    """Take each code cell's title verbatim from its ``# %%`` line.

    jupytext reads ``key=value`` words after ``# %%`` as cell metadata, so a title such as
    "DDIM with eta = 1 on every step" would come back cut to "DDIM with".
    """
    for cell in cells:
        if cell.kind != "code" or cell.line < 2:
            continue
        marker = lines[cell.line - 2].strip()
        if marker.startswith("# %%"):
            title = marker[4:].strip()
            cell.title = title or None


def read_snippet(path: Path, root: Path) -> RunUnit:
    """Read a percent-format snippet file into a unit that runs in the file's folder."""
    path = path.resolve()
    label = _relative_label(path, root)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    header = parse_header(lines[0], label) if lines else None
    if header is None:
        header = SnippetHeader()

    notebook = jupytext.reads(text, fmt=PERCENT_FORMAT)
    cells: list[Cell] = []
    for nb_cell in notebook.cells:
        source = nb_cell.source
        if not cells and nb_cell.cell_type == "code" and source.startswith(HEADER_PREFIX):
            # The header is configuration, not code: it stays out of the notebook and the key.
            source = source.split("\n", 1)[1].lstrip("\n") if "\n" in source else ""
        if not source.strip():
            continue
        kind = "code" if nb_cell.cell_type == "code" else "markdown"
        cells.append(Cell(source=source, line=0, kind=kind, title=nb_cell.metadata.get("title")))
    _locate_code_cells(lines, cells)
    _read_titles_from_markers(lines, cells)

    folder = path.parent
    skip_reason = None
    if header.gpu == "required" and not gpu_present():
        skip_reason = "needs a GPU (header gpu=required) and this machine has none"
    return RunUnit(
        kind="snippet",
        path=path,
        label=label,
        line=1,
        cwd=folder,
        cells=cells,
        timeout=header.timeout,
        gpu=header.gpu,
        data=[(folder / item).resolve() for item in header.data],
        skip_reason=skip_reason,
    )


def gpu_present() -> bool:
    """Return whether an NVIDIA GPU device node exists, without importing torch."""
    return Path("/dev/nvidia0").exists()


def is_runnable(block: CodeBlock) -> bool:
    return block.fenced and block.lang in RUNNABLE_LANGS


def units_from_note(note: Note, note_path: Path, label: str | None = None) -> list[RunUnit]:
    """Group the runnable fences of ``note`` into units, following ``skip`` and ``continue``.

    ``note_path`` is the note's file on disk; fences run in its folder. ``label`` is the path
    shown in reports and defaults to the note's vault-relative path.
    """
    note_path = note_path.resolve()
    label = label or note.path
    units: list[RunUnit] = []
    previous: RunUnit | None = None
    for block in note.code_blocks:
        if not is_runnable(block):
            continue
        options = block.info.split()[1:]
        cell = Cell(source=block.code, line=block.code_line)
        if "continue" in options and previous is not None:
            previous.cells.append(cell)
            continue
        skip_reason = None
        if "skip" in options:
            reason_words = [word for word in options if word not in ("skip", "continue")]
            skip_reason = " ".join(reason_words) or "fence marked skip"
        previous = RunUnit(
            kind="fence",
            path=note_path,
            label=label,
            line=block.line,
            cwd=note_path.parent,
            cells=[cell],
            skip_reason=skip_reason,
        )
        units.append(previous)
    return units


def snippet_files(snippets_dir: Path) -> list[Path]:
    """Return the snippet files of a folder: ``*.py`` at its top level, minus ``_private.py``."""
    if not snippets_dir.is_dir():
        return []
    return sorted(p for p in snippets_dir.glob("*.py") if not p.name.startswith("_"))


def snippet_units(snippets_dir: Path, root: Path) -> list[RunUnit]:
    return [read_snippet(path, root) for path in snippet_files(snippets_dir)]


def note_units(vault: Vault) -> list[RunUnit]:
    """Return the units of every note in ``vault``, labelled with vault-relative paths."""
    units: list[RunUnit] = []
    for path in sorted(vault.notes):
        units.extend(units_from_note(vault.notes[path], vault.files[path], label=path))
    return units


def _relative_label(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _bound_names(tree: ast.AST) -> set[str]:
    """Collect every name the code binds anywhere: assignments, defs, imports, loop targets."""
    names: set[str] = set()
    # `total += 1` needs `total` to exist already, so an augmented assignment binds nothing.
    augmented = {id(node.target) for node in ast.walk(tree) if isinstance(node, ast.AugAssign)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            if id(node) not in augmented:
                names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
    return names


def binds_name(sources: list[str], name: str) -> bool:
    """Return whether any of ``sources`` binds ``name``; sources that fail to parse bind nothing."""
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        if name in _bound_names(tree):
            return True
    return False


NAME_ERROR_PATTERN = re.compile(r"name '([A-Za-z_][A-Za-z0-9_]*)' is not defined")


def undefined_name(evalue: str) -> str | None:
    """Return the name in a NameError message such as ``name 'x' is not defined``."""
    match = NAME_ERROR_PATTERN.search(evalue)
    return match.group(1) if match else None
