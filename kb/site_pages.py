"""Pages of the study site that kb fills or writes: questions, graph, tags and the home page.

A vault can hold these pages as ordinary notes (``questions.md`` with the marker
``<!-- kb:questions -->``), so Obsidian, ``kb check`` and ``kb graph`` see the same files as
the site. The plugin writes a page only when the vault has no note of that name. Either way
the markers are replaced by generated Markdown, and the result is parsed and resolved like a
note, so its wikilinks go through the same rewrite as every other page.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from kb.model import Note
from kb.parse import mask_code, parse_note
from kb.vault import Vault

__all__ = [
    "GRAPH_MARKER",
    "PROGRESS_MARKER",
    "QUESTIONS_MARKER",
    "TAGS_MARKER",
    "expand_markers",
    "generated_page",
    "generated_target",
    "home_page",
    "is_filled_page",
    "parse_page",
    "resolve_note_links",
    "strip_title",
]

QUESTIONS_MARKER = "<!-- kb:questions -->"
GRAPH_MARKER = "<!-- kb:graph -->"
TAGS_MARKER = "<!-- kb:tags -->"
PROGRESS_MARKER = "<!-- kb:progress -->"

GRAPH_HTML = '<div class="kb-graph kb-graph-global"></div>'
TAGS_LISTING = "<!-- material/tags -->"

_PAGES = {
    "graph": (
        "Graph",
        "Every note and link of the vault. Drag to pan, scroll to zoom, click a note to open it.",
        GRAPH_MARKER,
        "hide:\n  - toc\n",
    ),
    "tags": ("Tags", "Notes grouped by tag.", TAGS_MARKER, ""),
    "questions": (
        "Questions",
        "Every question of the vault, with its answer note, code and own-words status.",
        QUESTIONS_MARKER,
        "",
    ),
}

_MARKERS = re.compile(
    "|".join(re.escape(marker) for marker in (QUESTIONS_MARKER, GRAPH_MARKER, TAGS_MARKER,
                                              PROGRESS_MARKER))
)
_FIRST_H1 = re.compile(r"\A\s*# [^\n]*\n")


def is_filled_page(note: Note) -> bool:
    """Return whether ``note`` contains a marker that the site fills, such as the questions list.

    Such a page links every note it lists only on the site, so in the vault it has no links.
    """
    return _MARKERS.search(note.text) is not None


def generated_page(kind: str) -> str:
    """Return the text of the page ``kind`` (graph, tags, questions) for a vault without it."""
    title, explanation, marker, extra_meta = _PAGES[kind]
    return f"---\ntitle: {title}\n{extra_meta}---\n\n# {title}\n\n{explanation}\n\n{marker}\n"


def home_page(vault: Vault, links: list[tuple[str, str]]) -> str:
    """Return a home page for a vault without ``index.md``: the site's pages and every note.

    ``links`` lists (site page path, label) pairs of generated pages to name first.
    """
    lines = ["---", "title: Home", "---", "", "# Home", ""]
    lines.append("This vault has no `index.md`, so kb wrote this page. It lists every note.")
    lines.append("")
    for path, label in links:
        lines.append(f"- [{label}]({path})")
    if links:
        lines.append("")
    lines.append("## Notes")
    lines.append("")
    for path in sorted(vault.notes, key=str.casefold):
        target = path[:-3] if path.lower().endswith(".md") else path
        lines.append(f"- [[{target}]]")
    return "\n".join(lines) + "\n"


def expand_markers(text: str, fill: Callable[[str], str | None]) -> str | None:
    """Replace each kb marker outside code in ``text`` by ``fill(marker)``.

    Return the new text, or None when ``text`` has no marker to replace. A marker for which
    ``fill`` returns None stays as it is (an HTML comment, so it shows nothing).
    """
    if "<!-- kb:" not in text:
        return None
    masked = mask_code(text)
    pieces: list[str] = []
    position = 0
    for match in _MARKERS.finditer(masked):
        replacement = fill(match.group())
        if replacement is None:
            continue
        pieces.append(text[position:match.start()])
        pieces.append(replacement)
        position = match.end()
    if not pieces:
        return None
    pieces.append(text[position:])
    return "".join(pieces)


def strip_title(markdown: str) -> str:
    """Remove a leading ``# Title`` line, for generated Markdown placed under a note's own."""
    return _FIRST_H1.sub("", markdown, count=1)


def resolve_note_links(
    vault: Vault, note: Note, generated: dict[str, str] | None = None
) -> None:
    """Resolve the links of a note that is not part of ``vault``'s parse (a generated page or
    a note with filled markers) against the vault.

    A Markdown link to a page in ``generated`` (site path to text) resolves to that page.
    """
    for link in note.links:
        resolution = vault.resolve(link.target_text, link.source, link.syntax)
        link.target = resolution.target
        link.ambiguous = resolution.ambiguous
        link.candidates = list(resolution.candidates)
        link.would_create = resolution.would_create
        link.self_link = resolution.target == link.source
        if link.target is None and link.syntax == "markdown" and generated:
            candidate = generated_target(link.source, link.target_text)
            if candidate in generated:
                link.target = candidate
                link.would_create = None


def generated_target(source: str, target_text: str) -> str:
    """Return the site path a Markdown link written in ``source`` points to."""
    if target_text.startswith("/"):
        return target_text.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(source), target_text))


def parse_page(vault: Vault, text: str, path: str, generated: dict[str, str]) -> Note:
    """Parse ``text`` as the note at ``path`` and resolve its links against ``vault``."""
    note = parse_note(text, path)
    resolve_note_links(vault, note, generated)
    return note
