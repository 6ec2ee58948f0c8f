"""The "In my own words" section of an answer note: read its state and replace its explanation.

kb never writes an explanation for the person. It only moves the text the person gives it into
the section, keeps the previous explanation visible, and records the date.

Layout of the section after ``kb explain``::

    ## In my own words

    > [!prompt] Explain ... without looking at the reference.

    The person's explanation, any Markdown.
    <!-- kb: explained 2026-12-05 -->

    > [!quote]- Earlier explanation (2026-12-04)
    > The explanation it replaced.

The section counts as *not written* while it contains only the prompt callout and earlier
explanation callouts. Its date is the one in the ``kb: explained`` comment, which readers of the
note never see, or else the date the note file was last modified.

Writes are atomic: the new note goes to a temporary file in the same folder, which replaces the
note with ``os.replace`` only when the note still has the bytes read at the start. Every byte
outside the explanation stays as it was: line endings, a missing final newline, a byte order
mark, and all other sections.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kb.parse import parse_note

__all__ = [
    "ConcurrentChangeError",
    "ExplanationError",
    "NoteSnapshot",
    "OwnWords",
    "SECTION_TITLE",
    "check_editable",
    "read_own_words",
    "replace_explanation",
    "save_explanation",
    "section_lines",
    "write_atomically",
]

SECTION_TITLE = "In my own words"
REFERENCE_TITLE = "Reference explanation"

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_QUOTE = re.compile(r"^[ ]{0,3}>")
_CALLOUT_START = re.compile(r"^[ ]{0,3}>[ \t]?\[!(?P<type>[^\]\n]+)\][+-]?(?:[ \t]+(?P<title>.*?))?[ \t]*$")
_EARLIER_TITLE = re.compile(r"^earlier explanation\b", re.IGNORECASE)
_DATE_MARKER = re.compile(r"^[ \t]*<!--[ \t]*kb:[ \t]*explained[ \t]+(?P<date>\d{4}-\d{2}-\d{2})[ \t]*-->[ \t]*$")
_WORD = re.compile(r"\w+(?:['’-]\w+)*")


class ExplanationError(ValueError):
    """The explanation or the note cannot be saved as asked."""


class ConcurrentChangeError(ExplanationError):
    """The note changed on disk between reading it and replacing it."""


@dataclass(slots=True)
class OwnWords:
    """State of a note's own-words section."""

    state: Literal["missing", "not written", "written"]
    """``missing``: no such section; ``not written``: only the prompt and earlier explanations."""
    words: int = 0
    date: str | None = None
    """ISO date of the current explanation, when written."""
    line: int | None = None
    """1-based line of the section heading."""
    earlier: int = 0
    """Number of earlier explanations kept in folded callouts."""


@dataclass(slots=True)
class _Section:
    heading: int
    """0-based index of the heading line."""
    level: int
    end: int
    """0-based index just past the section's last line."""
    kinds: dict[int, str]
    """Kind of each body line: blank, prompt, earlier, marker or text."""


def split_lines(text: str) -> list[str]:
    """Split ``text`` into lines that keep their own line endings (CRLF, LF or CR)."""
    return _LINE.findall(text)


def _is_blank(line: str) -> bool:
    return not line.strip()


def section_lines(text: str) -> list[int]:
    """Return the 1-based lines of every own-words heading of the note, outside quotes."""
    lines = split_lines(text)
    return [
        heading.line for heading in parse_note(text, "").headings
        if heading.text.strip().casefold() == SECTION_TITLE.casefold()
        and not _QUOTE.match(lines[heading.line - 1])
    ]


def _find_section(text: str) -> _Section | None:
    note = parse_note(text, "")
    lines = split_lines(text)
    headings = [heading for heading in note.headings if not _QUOTE.match(lines[heading.line - 1])]
    for position, heading in enumerate(headings):
        if heading.text.strip().casefold() != SECTION_TITLE.casefold():
            continue
        end = len(lines)
        for later in headings[position + 1 :]:
            if later.level <= heading.level:
                end = later.line - 1
                break
        start = heading.line  # 0-based index of the first body line
        return _Section(heading.line - 1, heading.level, end, _classify(lines, start, end))
    return None


def _classify(lines: list[str], start: int, end: int) -> dict[int, str]:
    """Label each line of a section body. A quote runs from a ``>`` line to the next blank line."""
    kinds: dict[int, str] = {}
    quote_kind: str | None = None
    for index in range(start, end):
        line = lines[index]
        if _is_blank(line):
            kinds[index] = "blank"
            quote_kind = None
            continue
        if quote_kind is None and _QUOTE.match(line):
            callout = _CALLOUT_START.match(line.rstrip("\r\n"))
            quote_kind = "text"
            if callout:
                kind = callout.group("type").strip().lower()
                title = (callout.group("title") or "").strip()
                if kind == "prompt":
                    quote_kind = "prompt"
                elif _EARLIER_TITLE.match(title):
                    quote_kind = "earlier"
        if quote_kind is not None:
            kinds[index] = quote_kind
        elif _DATE_MARKER.match(line.rstrip("\r\n")):
            kinds[index] = "marker"
        else:
            kinds[index] = "text"
    return kinds


def _explanation_span(section: _Section) -> tuple[int, int] | None:
    written = [index for index, kind in section.kinds.items() if kind in ("text", "marker")]
    return (min(written), max(written)) if written else None


def _explanation_text(lines: list[str], section: _Section) -> tuple[str, str | None]:
    """Return the current explanation (markers left out) and the date its marker records."""
    span = _explanation_span(section)
    if span is None:
        return "", None
    parts: list[str] = []
    date = None
    for index in range(span[0], span[1] + 1):
        kind = section.kinds[index]
        if kind == "marker":
            date = _DATE_MARKER.match(lines[index].rstrip("\r\n")).group("date")
        elif kind in ("text", "blank"):
            parts.append(lines[index].rstrip("\r\n"))
    return "\n".join(parts).strip("\n"), date


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def read_own_words(text: str, modified: str | None = None) -> OwnWords:
    """Read the own-words section of note ``text``.

    ``modified`` is the ISO date the note file last changed. It is used as the date of an
    explanation written without kb (no ``kb: explained`` comment).
    """
    section = _find_section(text)
    if section is None:
        return OwnWords("missing")
    lines = split_lines(text)
    earlier = sum(
        1 for index, kind in section.kinds.items()
        if kind == "earlier" and (index == section.heading + 1 or section.kinds.get(index - 1) != "earlier")
    )
    explanation, date = _explanation_text(lines, section)
    words = count_words(explanation)
    if not explanation.strip():
        return OwnWords("not written", line=section.heading + 1, earlier=earlier)
    return OwnWords("written", words, date or modified, section.heading + 1, earlier)


def current_explanation(text: str) -> str:
    """Return the explanation now in the own-words section, or ``""``."""
    section = _find_section(text)
    if section is None:
        return ""
    return _explanation_text(split_lines(text), section)[0]


# Editing -----------------------------------------------------------------------------------


def _newline_of(lines: list[str]) -> str:
    for line in lines:
        for ending in ("\r\n", "\n", "\r"):
            if line.endswith(ending):
                return ending
    return "\n"


def _check_explanation(explanation: str, level: int) -> list[str]:
    """Return the explanation's lines without line endings; reject what would break the note."""
    explanation = explanation.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    body = [line.rstrip() for line in explanation.split("\n")]
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    body = [line for line in body if not _DATE_MARKER.match(line)]
    if not any(line.strip() for line in body):
        raise ExplanationError("the explanation is empty; nothing was saved")
    parsed = parse_note("\n".join(body) + "\n", "")
    for heading in parsed.headings:
        if heading.level <= level and not _QUOTE.match(body[heading.line - 1]):
            raise ExplanationError(
                f"line {heading.line} of the explanation is a level-{heading.level} heading, "
                f"which would end the '{SECTION_TITLE}' section; use a level-{level + 1} "
                "heading or bold text instead"
            )
    return body


def _earlier_callout(old: str, date: str, newline: str) -> list[str]:
    lines = [f"> [!quote]- Earlier explanation ({date}){newline}"]
    for line in old.split("\n"):
        lines.append(f"> {line}{newline}" if line.strip() else f">{newline}")
    return lines


def _quote_runs(lines: list[str], section: _Section, first: int, last: int) -> list[list[str]]:
    """Prompt and earlier-explanation callouts found between ``first`` and ``last``."""
    runs: list[list[str]] = []
    previous = None
    for index in range(first, last + 1):
        kind = section.kinds[index]
        if kind in ("prompt", "earlier"):
            if previous != kind or index == first:
                runs.append([])
            runs[-1].append(lines[index])
        previous = kind
    return runs


def replace_explanation(text: str, explanation: str, today: str, previous_date: str) -> str:
    """Return ``text`` with ``explanation`` as the note's own-words explanation.

    The explanation it replaces moves into a folded ``Earlier explanation`` callout dated
    ``previous_date`` unless its ``kb: explained`` comment records a date. Without an own-words
    section, one is added before ``## Reference explanation``, or at the end of the note.
    """
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    text = text[len(bom):]
    lines = split_lines(text)
    newline = _newline_of(lines)
    missing_final_newline = bool(lines) and not lines[-1].endswith(("\n", "\r"))
    if missing_final_newline:
        lines[-1] += newline

    section = _find_section(text)
    level = section.level if section else 2
    body = _check_explanation(explanation, level)
    block = [line + newline for line in body]
    block.append(f"<!-- kb: explained {today} -->{newline}")

    if section is None:
        lines = _add_section(text, lines, block, newline)
    else:
        lines = _replace_in_section(lines, section, block, newline, previous_date)

    result = "".join(lines)
    if missing_final_newline and result.endswith(newline):
        result = result[: -len(newline)]
    return bom + result


def _add_section(text: str, lines: list[str], block: list[str], newline: str) -> list[str]:
    heading = f"## {SECTION_TITLE}{newline}"
    note = parse_note(text, "")
    reference = next(
        (h for h in note.headings if h.text.strip().casefold() == REFERENCE_TITLE.casefold()), None
    )
    if reference is not None:
        at = reference.line - 1
        return lines[:at] + [heading, newline] + block + [newline] + lines[at:]
    prefix = [newline] if lines and not _is_blank(lines[-1]) else []
    return lines + prefix + [heading, newline] + block


def _replace_in_section(
    lines: list[str], section: _Section, block: list[str], newline: str, previous_date: str
) -> list[str]:
    span = _explanation_span(section)
    if span is None:
        prompts = [index for index, kind in section.kinds.items() if kind == "prompt"]
        at = max(prompts) + 1 if prompts else section.heading + 1
        replacement = list(block)
        first = last = at
        remove = 0
    else:
        first, last = span
        old, marker_date = _explanation_text(lines, section)
        replacement = list(block)
        if old.strip():
            replacement += [newline] + _earlier_callout(old, marker_date or previous_date, newline)
        for run in _quote_runs(lines, section, first, last):
            replacement += [newline] + run
        remove = last - first + 1
        at = first

    before = lines[:at]
    after = lines[at + remove :]
    if before and not _is_blank(before[-1]):
        replacement.insert(0, newline)
    if after and not _is_blank(after[0]):
        replacement.append(newline)
    return before + replacement + after


# Files ------------------------------------------------------------------------------------


@dataclass(slots=True)
class NoteSnapshot:
    """A note's bytes as read at one moment, to detect a later change on disk."""

    path: Path
    data: bytes
    text: str
    modified: str
    """ISO date (local time) the file was last modified."""

    @classmethod
    def read(cls, path: Path) -> "NoteSnapshot":
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ExplanationError(
                f"{path}: byte {error.start} is not valid UTF-8; re-save the note as UTF-8 "
                "before kb edits it"
            ) from None
        modified = dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
        return cls(path, data, text, modified)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def write_atomically(path: Path, expected: bytes | None, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, if it still contains ``expected``.

    ``expected=None`` creates the file and raises ``FileExistsError`` when it exists already.
    Otherwise :class:`ConcurrentChangeError` is raised when the file has other bytes or is gone.
    A process killed at any point leaves the old or the new file, and at worst a stray
    ``.*.kb-tmp`` file in the same folder.

    NOTE: a change made between the final comparison and the rename is lost, because no
    portable lock keeps an editor such as Obsidian from writing in that moment.
    """
    folder = path.parent
    # Not tempfile.mkstemp: its files are private (0600), and a new note would keep that mode.
    # os.open with 0o666 gives the permissions the umask allows, as an editor's new file has.
    temporary = folder / f".{path.name}.{secrets.token_hex(6)}.kb-tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if expected is None:
            os.link(temporary, path)  # fails with FileExistsError instead of overwriting
            os.unlink(temporary)
        else:
            try:
                os.chmod(temporary, path.stat().st_mode & 0o7777)
                current = path.read_bytes()
            except FileNotFoundError:
                raise ConcurrentChangeError(
                    f"{path} was removed or renamed after kb read it; nothing was saved"
                ) from None
            if hashlib.sha256(current).digest() != hashlib.sha256(expected).digest():
                raise ConcurrentChangeError(
                    f"{path} changed on disk after kb read it; nothing was saved. Run the "
                    "command again to work on the current version"
                )
            os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def check_editable(snapshot: NoteSnapshot) -> None:
    """Raise :class:`ExplanationError` when kb must not write an explanation into the note.

    A read-only note stays as it is, even where the folder would let kb replace it, and a
    note with two own-words sections is left for the person to merge, because kb cannot
    tell which one contains the explanation.
    """
    try:
        mode = snapshot.path.stat().st_mode
    except FileNotFoundError:
        raise ConcurrentChangeError(
            f"{snapshot.path} was removed or renamed after kb read it; nothing was saved"
        ) from None
    except OSError as error:
        raise ExplanationError(f"{snapshot.path}: cannot read the file ({error.strerror})") from None
    if not mode & 0o222:
        raise ExplanationError(
            f"{snapshot.path} is read-only; make it writable (chmod u+w) and run the command again"
        )
    sections = section_lines(snapshot.text)
    if len(sections) > 1:
        where = ", ".join(str(line) for line in sections)
        raise ExplanationError(
            f"{snapshot.path} has {len(sections)} '## {SECTION_TITLE}' sections (lines {where}); "
            "merge them into one and run the command again"
        )


def save_explanation(snapshot: NoteSnapshot, explanation: str, today: str | None = None) -> OwnWords:
    """Write ``explanation`` into the note read as ``snapshot``; return the section's new state.

    Raises :class:`ExplanationError` when :func:`check_editable` rejects the note or the
    explanation would break it, and :class:`ConcurrentChangeError` when the file no longer
    matches ``snapshot``.
    """
    check_editable(snapshot)
    today = today or dt.date.today().isoformat()
    new_text = replace_explanation(snapshot.text, explanation, today, snapshot.modified)
    write_atomically(snapshot.path, snapshot.data, new_text.encode("utf-8"))
    return read_own_words(new_text, today)
