"""Records of one parse: links, tags, headings, blocks, callouts, code blocks, problems.

Every record carries the vault-relative path of its note and a 1-based line number, and its
``str()`` is ``path:line`` so messages can point at the exact spot.
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "Block",
    "Callout",
    "CodeBlock",
    "ExternalLink",
    "Heading",
    "Link",
    "Note",
    "Problem",
    "Tag",
]


@dataclass(slots=True)
class Link:
    """One link occurrence, as written, plus where the resolver says it points."""

    source: str
    """Vault-relative path of the note that contains the link."""
    line: int
    start: int
    """Offset of ``raw`` in the note's text; ``end`` is the offset just past it."""
    end: int
    raw: str
    syntax: Literal["wikilink", "markdown", "property"]
    kind: Literal["link", "embed"]
    target_text: str
    """The file part as written, after trimming, URL-decoding and NFC normalisation."""
    heading: list[str] | None = None
    block: str | None = None
    display: str | None = None
    size: str | None = None
    fragment: str | None = None
    property: str | None = None
    """Front-matter key the link sits under, for ``syntax == "property"``."""

    # Filled in by the resolver.
    target: str | None = None
    would_create: str | None = None
    ambiguous: bool = False
    candidates: list[str] = field(default_factory=list)
    self_link: bool = False
    heading_exists: bool | None = None
    block_exists: bool | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"

    @builtins.property  # the field "property" shadows the builtin in this class body
    def resolved(self) -> bool:
        return self.target is not None

    def record(self) -> dict[str, Any]:
        """Return the public JSON record of this link (offsets and raw target text left out)."""
        data = asdict(self)
        for private in ("start", "end", "target_text"):
            data.pop(private)
        return data


@dataclass(slots=True)
class Tag:
    name: str
    """Lower-cased, without ``#``; nested tags as ``a/b``."""
    written: str
    """The casing as written, for display."""
    source: str
    line: int
    origin: Literal["frontmatter", "inline"]
    start: int = -1
    end: int = -1

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(slots=True)
class Heading:
    level: int
    text: str
    source: str
    line: int
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(slots=True)
class Block:
    """A block id (``^id``) and the lines of the block it names."""

    id: str
    source: str
    line: int
    """Line of the ``^id`` marker."""
    start_line: int
    end_line: int
    """First and last line of the block's content (inclusive)."""
    start: int = -1
    """Offset of the ``^id`` marker in the note's text; ``end`` is the offset just past it."""
    end: int = -1

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(slots=True)
class ExternalLink:
    """A Markdown link that leaves the vault (``[text](https://...)``) or has no destination.

    It is no edge of the graph. The parse keeps it so that readers of the note's text, such as
    the question rule, know where the link's text lies.
    """

    url: str
    display: str
    source: str
    line: int
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(slots=True)
class Callout:
    type: str
    """Lower-cased callout type, as written (unknown types still appear here)."""
    title: str
    fold: str | None
    """``"+"``, ``"-"`` or ``None``."""
    depth: int
    source: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(slots=True)
class CodeBlock:
    lang: str
    """First word of the info string, lower-cased; ``""`` when there is none."""
    info: str
    source: str
    line: int
    """Line of the opening fence (or of the first line of an indented block)."""
    code_line: int
    end_line: int
    code: str
    fenced: bool

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def options(self) -> list[str]:
        """Words of the info string after the language, e.g. ``["skip"]``."""
        return self.info.split()[1:]


@dataclass(slots=True)
class Problem:
    """Something wrong with the input, phrased so the person can fix it."""

    path: str
    line: int | None
    severity: Literal["error", "warning", "info"]
    code: str
    """Stable short id, e.g. ``invalid-frontmatter``, ``unresolved-link``."""
    message: str

    def __str__(self) -> str:
        path = self.path.translate(_ESCAPE_CONTROL)
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.severity}: {self.message.translate(_ESCAPE_CONTROL)}"


# A file name may contain a line break or another control character. Printed raw, it would
# split one ``path:line: severity: message`` line in two, so it is shown as an escape.
_ESCAPE_CONTROL = {
    code: repr(chr(code))[1:-1] for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
}


@dataclass(slots=True)
class Note:
    """One Markdown note, parsed."""

    path: str
    text: str
    frontmatter: dict[str, Any] = field(default_factory=dict)
    body_start: int = 0
    """Offset of the first character after the front matter."""
    body_line: int = 1
    links: list[Link] = field(default_factory=list)
    external_links: list[ExternalLink] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    headings: list[Heading] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    callouts: list[Callout] = field(default_factory=list)
    code_blocks: list[CodeBlock] = field(default_factory=list)
    verbatim: list[tuple[int, int]] = field(default_factory=list)
    """Offsets (start, end) of code blocks, code spans and math, where no link or tag is read.
    Code blocks come first, then the inline spans, each group in text order."""
    aliases: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        """File name without ``.md``: the note's title in Obsidian."""
        base = self.path.rsplit("/", 1)[-1]
        return base[:-3] if base.lower().endswith(".md") else base

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def tag_names(self) -> list[str]:
        """Unique tag names in order of first appearance."""
        return list(dict.fromkeys(tag.name for tag in self.tags))
