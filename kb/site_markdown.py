"""Rewrite one parsed note into the Markdown that MkDocs renders for the study site.

Every change is driven by the records of :mod:`kb.parse`, never by a second scan for links or
tags: wikilinks and Markdown links become relative links, embeds are transcluded, inline tags
link to the tags index, block ids become anchors, and callouts become Material admonitions.

The rewrite works line by line over a span of the note's text, because callouts change the
prefix of every line they cover and a transcluded block must repeat the prefix of the line
that embeds it (a quote or a callout around ``![[Note]]``).
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from kb.model import Callout, Link, Note
from kb.parse import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    MAX_INDENT_COLUMNS,
    MAX_QUOTE_DEPTH,
    VIDEO_EXTENSIONS,
)
from kb.parse import masked_text
from kb.vault import Vault

__all__ = [
    "CALLOUT_TYPES",
    "RenderContext",
    "block_anchor",
    "escape_text",
    "heading_slugs",
    "plain_heading_text",
    "render_note",
]

# Obsidian callout types (and their aliases) mapped to Material admonition types. Material
# styles every key of this table itself; unknown types fall back to "note".
CALLOUT_TYPES = {
    "note": "note",
    "abstract": "abstract", "summary": "abstract", "tldr": "abstract",
    "info": "info", "todo": "info",
    "tip": "tip", "hint": "tip", "important": "tip",
    "success": "success", "check": "success", "done": "success",
    "question": "question", "help": "question", "faq": "question",
    "warning": "warning", "caution": "warning", "attention": "warning",
    "failure": "failure", "fail": "failure", "missing": "failure",
    "danger": "danger", "error": "danger",
    "bug": "bug",
    "example": "example",
    "quote": "quote", "cite": "quote",
}

INDENT = "    "
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A list item marker at the start of a line (after any quote prefix).
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
# A list item that may start a list right below a paragraph line. As in CommonMark, it must
# have content, and an ordered one must start at 1, so "width\n32. The" stays one paragraph.
_INTERRUPTING_ITEM = re.compile(r"[ \t]*(?:[-*+]|1[.)])[ \t]+\S")
# "1)" at the start of a list item: its indentation, number and parenthesis.
_PARENTHESIS_ITEM = re.compile(r"(?P<indent>[ \t]*)(?P<number>\d{1,9})\)")
# The delimiter row under a table's header: "| --- | :-: |" or "--- | ---".
_TABLE_DELIMITER = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
# Seven or more # at the start of a line: text in CommonMark, a level-6 heading in
# Python-Markdown.
_SEVEN_HASHES = re.compile(r"[ ]{0,3}#{7,}(?:[ \t]|$)")
# Obsidian comments; found in text whose code spans, code blocks and math are blanked.
_COMMENT = re.compile(r"%%.*?%%", re.S)
# The callout marker before its title: ``[!type]`` and an optional fold sign.
_CALLOUT_MARKER = re.compile(r"\[![^\]]*\][+-]?[ \t]*")


def escape_text(text: str) -> str:
    """Escape ``text`` for HTML that Python-Markdown later reads inside a table row too."""
    return html.escape(text, quote=True).replace("|", "&#124;")


def block_anchor(block_id: str) -> str:
    """Return the HTML id given to the block ``^block_id`` on its page."""
    return f"block-{block_id}"


@dataclass
class RenderContext:
    """What the rewrite needs from the site build, for one page."""

    vault: Vault
    page_path: str
    """Vault path of the note whose page is being rendered."""
    url_for: Callable[[str], str | None]
    """Vault path to a URL relative to the page, or None when the site has no such file."""
    anchor_for: Callable[[str, list[str]], str | None]
    """Note path and heading chain to the id of that heading on the note's page."""
    tag_url: Callable[[str], str | None]
    """Tag name to the URL of its entry in the tags index, relative to the page."""
    snippet_embed: Callable[[str, str | None], str]
    """Vault path of a snippet and a cell title to the Markdown that shows it."""
    max_depth: int = 8
    fold_heading: str | None = None
    """Heading text whose section is folded until the reader opens it, or None."""
    embedded_notes: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Line:
    start: int
    end: int
    """Offsets of the line's content in the note's text, line break excluded."""
    number: int


def _lines(text: str, start: int, end: int, first_number: int) -> list[_Line]:
    lines = []
    position = start
    number = first_number
    for match in _LINE_BREAK.finditer(text, start, end):
        lines.append(_Line(position, match.start(), number))
        position = match.end()
        number += 1
    if position < end or not lines:
        lines.append(_Line(position, end, number))
    return lines


def _quote_depth(content: str) -> tuple[int, int]:
    """Count the leading ``>`` markers of a line; return (depth, length of the prefix)."""
    if ">" not in content[:4]:
        return 0, 0  # most lines: no quote marker where one could start
    depth = 0
    index = 0
    while True:
        probe = index
        spaces = 0
        while probe < len(content) and content[probe] == " " and spaces < 3:
            probe += 1
            spaces += 1
        if probe < len(content) and content[probe] == ">":
            probe += 1
            if probe < len(content) and content[probe] in " \t":
                probe += 1
            depth += 1
            index = probe
        else:
            return depth, index


def plain_heading_text(note: Note, heading_index: int) -> str:
    """Approximate the text that the rendered heading shows (links by their display text)."""
    heading = note.headings[heading_index]
    text = note.text
    line_end = text.find("\n", heading.start)
    line_end = len(text) if line_end < 0 else line_end
    content_start = text.find(heading.text, heading.start, line_end) if heading.text else -1
    if content_start < 0:
        return heading.text
    content_end = content_start + len(heading.text)
    pieces = []
    position = content_start
    for link in note.links:
        if link.start >= content_start and link.end <= content_end:
            pieces.append(text[position:link.start])
            pieces.append(_default_display(link, note))
            position = link.end
    pieces.append(text[position:content_end])
    plain = "".join(pieces)
    for marker in ("**", "__", "==", "~~", "`", "*"):
        plain = plain.replace(marker, "")
    return html.unescape(plain).strip()


def heading_slugs(note: Note, slugify: Callable[[str, str], str], separator: str) -> list[str]:
    """Predict the id Python-Markdown's toc gives each heading of ``note``, in order.

    Duplicates get ``_1``, ``_2`` ... as toc's ``unique()`` does. Headings added by
    transcluded notes can shift these; the plugin corrects links after rendering.
    """
    used: set[str] = set()
    slugs = []
    for index in range(len(note.headings)):
        slug = slugify(plain_heading_text(note, index), separator) or "_"
        base, count = slug, 0
        while slug in used:
            count += 1
            slug = f"{base}_{count}"
        used.add(slug)
        slugs.append(slug)
    return slugs


def _default_display(link: Link, note: Note | None = None) -> str:
    if link.display:
        return link.display
    target = link.target_text
    if link.syntax == "markdown":
        return target
    if link.heading:
        chain = " > ".join(link.heading)
        return f"{target} > {chain}" if target else chain
    if link.block:
        return f"{target} > ^{link.block}" if target else f"^{link.block}"
    if link.fragment:
        return f"{target} > {link.fragment}"
    return target


def _extension(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def _section_span(note: Note, chain: list[str]) -> tuple[int, int] | None:
    """Offsets of the section under the last heading of ``chain``, heading line included."""
    wanted = [segment.casefold() for segment in chain]
    position = 0
    found = None
    for segment in wanted:
        while position < len(note.headings) and note.headings[position].text.casefold() != segment:
            position += 1
        if position == len(note.headings):
            return None
        found = position
        position += 1
    heading = note.headings[found]
    end = len(note.text)
    for later in note.headings[found + 1:]:
        if later.level <= heading.level:
            end = later.start
            break
    return heading.start, end


def _line_offsets(text: str) -> list[int]:
    return [0] + [match.end() for match in _LINE_BREAK.finditer(text)]


def _block_span(note: Note, block_id: str) -> tuple[int, int] | None:
    for block in note.blocks:
        if block.id == block_id:
            starts = _line_offsets(note.text)
            start = starts[block.start_line - 1]
            last = max(block.end_line, block.line)
            end = starts[last] if last < len(starts) else len(note.text)
            return start, end
    return None


def render_note(ctx: RenderContext, note: Note) -> str:
    """Return the Markdown body (front matter removed) of ``note`` rewritten for the site."""
    return _render_span(ctx, note, note.body_start, len(note.text), [note.path])


def _render_span(
    ctx: RenderContext, note: Note, start: int, end: int, stack: list[str]
) -> str:
    text = note.text
    first_number = len(_LINE_BREAK.findall(text, 0, start)) + 1
    lines = _lines(text, start, end, first_number)

    # Everything that replaces a piece of a line, keyed by offset.
    edits: list[tuple[int, int, str, Any]] = []
    for link in note.links:
        if link.syntax != "property" and start <= link.start and link.end <= end:
            edits.append((link.start, link.end, "link", link))
    for tag in note.tags:
        if tag.origin == "inline" and start <= tag.start and tag.end <= end:
            edits.append((tag.start, tag.end, "tag", tag))
    comments = _comment_spans(note, start, end)
    for comment_start, comment_end in comments:
        edits.append((comment_start, comment_end, "comment", None))
    for span_start, span_end in note.verbatim:
        if start <= span_start and span_end <= end and text.startswith("$$", span_start):
            inline = _inline_display_math(text, span_start, span_end)
            if inline is not None:
                edits.append((span_start, span_end, "math", inline))
    # A comment sorts before a link or tag at the same offset, so it hides them.
    edits.sort(key=lambda edit: (edit[0], edit[2] != "comment"))
    code_lines = _code_lines(note)
    # Lines that continue a code span or math begun on an earlier line: a "+" or "1." there is
    # TeX or code, never a list item.
    continued, math_blocks = _verbatim_lines(note, start, end)
    closing_hashes = {heading.line for heading in note.headings if heading.text.endswith("#")}

    blocks_by_line: dict[int, list] = {}
    for block in note.blocks:
        blocks_by_line.setdefault(block.line, []).append(block)
    block_starts: dict[int, list] = {}
    for block in note.blocks:
        if block.line != block.start_line:
            block_starts.setdefault(block.start_line, []).append(block)
    callouts = {callout.line: callout for callout in note.callouts}
    fold = _fold_section(ctx, note) if stack == [note.path] else None

    output: list[str] = []
    levels: list[bool] = []  # per quote level: True when that level is a callout
    edit_index = 0
    placed: set[str] = set()
    # Kind of the previous line, to separate a list from the paragraph line just above it.
    previous = "blank"
    list_indents = _ListIndents()
    for line in lines:
        content = text[line.start:line.end]
        if comments and _inside_comment(comments, line):
            edit_index = _advance(edits, edit_index, line.end)
            continue
        if (
            content[:1].isalpha()
            and previous not in ("table", "math")
            and (edit_index == len(edits) or edits[edit_index][0] >= line.end)
            and line.number not in code_lines
            and line.number not in callouts
            and line.number not in blocks_by_line
            and line.number not in block_starts
            and (fold is None or not fold[0] <= line.number <= fold[1])
        ):
            # Most lines: text outside quotes and lists with nothing to rewrite. The steps
            # below would keep it as written, so only the list state is brought up to date.
            levels = []
            list_indents.reindent(content, previous == "blank")
            previous = "list" if previous == "list" else "text"
            output.append(content)
            continue
        depth, prefix_length = _quote_depth(content)
        # Deeper nesting is shown at the limit: Python-Markdown would recurse past Python's
        # stack limit. kb.parse reports such notes as "too-deep-nesting".
        depth = min(depth, MAX_QUOTE_DEPTH)
        if depth == 0:
            levels = []  # a line outside quotes ends every callout and quote
        else:
            levels = levels[:depth] + [False] * (depth - len(levels))

        callout = callouts.get(line.number)
        header = None
        if callout is not None and callout.depth <= min(depth, MAX_QUOTE_DEPTH):
            levels = levels[: callout.depth - 1] + [True]
            header = _admonition_header(callout)

        prefix = ""
        if levels:
            prefix = "".join([INDENT if is_callout else "> " for is_callout in levels])
        if fold is not None and fold[0] <= line.number <= fold[1]:
            if line.number == fold[0]:
                title = escape_text(ctx.fold_heading or "")
                output.append(f'??? kb-reference "{title}"')
                edit_index = _advance(edits, edit_index, line.end)
                continue
            prefix = INDENT + prefix

        pieces: list[str] = []
        position = line.start + prefix_length
        indent_end = _excess_indent_end(text, position, line.end)
        if indent_end is not None and not _in_code_block(note, line.number):
            pieces.append(" " * MAX_INDENT_COLUMNS)
            position = indent_end
        rest = content[prefix_length:]
        list_indents.item = False
        if header is None and line.number not in code_lines and line.number not in continued:
            reindent = list_indents.reindent(rest, previous == "blank", previous == "text")
            if reindent is not None:
                new_indent, old_length = reindent
                pieces = [new_indent]
                position = line.start + prefix_length + old_length
            parenthesis = _PARENTHESIS_ITEM.match(rest) if list_indents.item else None
            if parenthesis is not None:
                # Python-Markdown reads only "1." items; Obsidian reads "1)" the same way.
                pieces.append(text[position : line.start + prefix_length + parenthesis.end("number")] + ".")
                position = line.start + prefix_length + parenthesis.end()
        if header is not None:
            # The callout line holds its marker and title; links and tags of the title are
            # rendered into the admonition title.
            title, edit_index = _render_callout_title(ctx, note, edits, edit_index, line)
            title = title or html.escape(callout.title, quote=True)
            output.append(prefix[: -len(INDENT)] + header + f' "{title}"')
            previous = "blank"
            continue

        for block in block_starts.get(line.number, []):
            # An anchor line of its own, so a table or list below keeps its structure.
            if depth == 0 and not content[:1].isspace():
                pieces.append(_block_span_html(block.id) + "\n\n")
                placed.add(block.id)

        line_blocks = blocks_by_line.get(line.number, [])
        marker_start = line.end
        if line_blocks:
            marker = "^" + line_blocks[-1].id
            stripped_end = len(content.rstrip())
            if content[:stripped_end].endswith(marker):
                marker_start = line.start + stripped_end - len(marker)

        while edit_index < len(edits) and edits[edit_index][0] < line.end:
            edit_start, edit_end, kind, record = edits[edit_index]
            edit_index += 1
            if edit_start < position:
                continue
            pieces.append(text[position:edit_start])
            if kind == "comment":
                pass
            elif kind == "math":
                pieces.append(record)
            elif kind == "tag":
                pieces.append(_render_tag(ctx, record))
            elif record.kind == "embed":
                pieces.append(_render_embed(ctx, note, record, stack, prefix, content, line))
            else:
                pieces.append(_render_link(ctx, note, record))
            position = edit_end

        pieces.append(text[position:marker_start])
        if marker_start < line.end and line_blocks[-1].id not in placed:
            pieces.append(_block_span_html(line_blocks[-1].id))

        # Obsidian starts a list right after a paragraph line; Python-Markdown needs a blank
        # line between them, so one is added here (never inside code).
        if line.number in code_lines:
            kind = "code"
        elif not rest.strip():
            kind = "blank"
        elif line.number in math_blocks:
            # Arithmatex reads a $$ block only as a block of its own, where Obsidian also
            # shows one inside a paragraph: blank lines go around it.
            kind = "math" if math_blocks[line.number] == "last" else "text"
            if math_blocks[line.number] == "first" and previous in ("text", "math"):
                output.append(prefix.rstrip())
        elif line.number in continued:
            kind = previous if previous in ("text", "list") else "text"
        elif previous == "math":
            kind = "list" if list_indents.item else "text"
            output.append(prefix.rstrip())
        elif rest.lstrip().startswith("|") and (previous == "table" or _TABLE_DELIMITER.match(rest)):
            kind = "table"
        elif previous == "table":
            # GFM would read this line as one more row; Python-Markdown drops the whole
            # table instead, so the line starts a paragraph below the table.
            kind = "list" if list_indents.item else "text"
            output.append(prefix.rstrip())
        elif list_indents.item:
            kind = "list"
            if previous == "text" or list_indents.switched:
                output.append(prefix.rstrip())
        else:
            kind = "list" if previous == "list" else "text"
        previous = kind
        body = "".join(pieces)
        if line.number in closing_hashes:
            # "## C#": CommonMark drops a closing run of # only after a space, Python-Markdown
            # always, so the run is escaped.
            body = body.rstrip()
            run = len(body) - len(body.rstrip("#"))
            if run:  # a rewrite of the line's end (a tag, a block id) may have taken the run
                body = body[:-run] + "\\#" * run
        elif line.number not in code_lines and _SEVEN_HASHES.match(body):
            body = body.replace("#", "\\#", 1)  # no heading has seven levels: it is text
        output.append(prefix + body)
    return "\n".join(output)


class _ListIndents:
    """Re-indent list lines so that Python-Markdown nests them as Obsidian does.

    Obsidian nests an item under the item above it whenever it is indented further (by a tab,
    2 spaces or any other amount). Python-Markdown nests only by 4 columns per level, so each
    item and indented continuation line gets 4 spaces per nesting level.
    """

    MAX_LEVEL = 16

    def __init__(self) -> None:
        self.indents: list[int] = []
        """Indentation, in columns, of the open item at each nesting level."""
        self.ordered: list[bool] = []
        """Whether the open item at each nesting level is numbered."""
        self.item = False
        """Whether the line last passed to :meth:`reindent` starts a list item."""
        self.switched = False
        """Whether that item follows a sibling item of the other kind, bullet or number."""

    def reindent(self, rest: str, after_blank: bool, after_text: bool = False) -> tuple[str, int] | None:
        """Return the new indentation of a line and the length of its old one, or None to
        keep the line as written. ``rest`` is the line without its quote prefix, and
        ``after_text`` says that a paragraph line is right above it."""
        self.item = self.switched = False
        stripped = rest.lstrip(" \t")
        if not stripped:
            return None
        width = _indent_columns(rest[: len(rest) - len(stripped)])
        if _LIST_ITEM.match(stripped):
            if width > 0 and not self.indents and after_blank:
                return None  # not inside a list: an indented line here is code
            if after_text and not self.indents and not _INTERRUPTING_ITEM.match(stripped):
                return None  # it continues the paragraph above
            self.item = True
            ordered = stripped[0].isdigit()
            while self.indents and self.indents[-1] >= width:
                # A sibling of the other kind ("- a" then "1. b") starts a new list.
                self.switched = self.indents[-1] == width and self.ordered[-1] != ordered
                self.indents.pop()
                self.ordered.pop()
            self.indents.append(width)
            self.ordered.append(ordered)
            level = min(len(self.indents) - 1, self.MAX_LEVEL)
            return INDENT * level, len(rest) - len(stripped)
        if not self.indents:
            return None
        if width == 0:
            if after_blank:
                self.indents, self.ordered = [], []  # a paragraph after a blank line ends the list
            return None
        level = min(sum(indent < width for indent in self.indents), self.MAX_LEVEL)
        return INDENT * max(level, 1), len(rest) - len(stripped)


def _inline_display_math(text: str, start: int, end: int) -> str | None:
    """Return ``$$x$$`` written inside a line of text as ``$\\displaystyle x$``, else None.

    Obsidian shows such math in display style. Python-Markdown's arithmatex reads ``$$`` only
    as a block of its own lines, and inside a line it would take ``$x$`` as inline math and
    leave a ``$`` on each side.
    """
    tex = text[start + 2 : end - 2].strip()
    if not tex or "\n" in tex or "\r" in tex:
        return None
    line_start = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
    line_end = min((i for i in (text.find("\n", end), text.find("\r", end)) if i >= 0), default=len(text))
    before = text[line_start:start].strip(" \t>")
    after = text[end:line_end].strip()
    if not before and not after:
        return None  # a display block of its own: arithmatex renders it
    return f"$\\displaystyle {tex}$"


def _indent_columns(whitespace: str) -> int:
    columns = 0
    for character in whitespace:
        columns += 4 - columns % 4 if character == "\t" else 1
    return columns


def _verbatim_lines(note: Note, start: int, end: int) -> tuple[set[int], dict[int, str]]:
    """Return the lines of multi-line code spans and math between offsets ``start`` and ``end``.

    The set holds the lines after the first of each such span. The dict maps the first and
    last line of each ``$$`` block to "first" and "last", for blocks whose ``$$`` open and
    close their lines: ``$$`` in the middle of a line is display math inside the text (see
    _inline_display_math).
    """
    text = note.text
    starts = _line_offsets(text)
    continued: set[int] = set()
    math_blocks: dict[int, str] = {}
    for span_start, span_end in note.verbatim:
        if not start <= span_start or not span_end <= end:
            continue
        first = bisect.bisect_right(starts, span_start)
        last = bisect.bisect_right(starts, span_end - 1)
        continued.update(range(first + 1, last + 1))
        if first < last and text.startswith("$$", span_start):
            line_end = starts[last] if last < len(starts) else len(text)
            opens_line = not text[starts[first - 1] : span_start].strip(" \t>")
            closes_line = not text[span_end:line_end].strip()
            if opens_line and closes_line:
                math_blocks[first] = "first"
                math_blocks[last] = "last"
    return continued, math_blocks


def _code_lines(note: Note) -> set[int]:
    lines: set[int] = set()
    for block in note.code_blocks:
        lines.update(range(block.line, block.end_line + 1))
    return lines


def _comment_spans(note: Note, start: int, end: int) -> list[tuple[int, int]]:
    """Return the offsets of the ``%% comments %%`` between ``start`` and ``end``, each cut
    into one span per line, since the rewrite edits one line at a time."""
    text = note.text
    if "%%" not in text[start:end]:
        return []
    masked = masked_text(note)
    spans = []
    for match in _COMMENT.finditer(masked, start, end):
        position = match.start()
        for line_break in _LINE_BREAK.finditer(text, match.start(), match.end()):
            spans.append((position, line_break.start()))
            position = line_break.end()
        spans.append((position, match.end()))
    return spans


def _inside_comment(comments: list[tuple[int, int]], line: _Line) -> bool:
    """Return whether a whole non-empty line is commented out; such a line is dropped."""
    return any(
        comment_start <= line.start and line.end <= comment_end and comment_end > comment_start
        for comment_start, comment_end in comments
    )


def _render_callout_title(
    ctx: RenderContext, note: Note, edits: list, edit_index: int, line: _Line
) -> tuple[str, int]:
    """Render the title of the callout on ``line`` with its links and tags, for the quoted
    title of an admonition. Return it and the index of the first edit after the line.

    The admonition extension reads its title as Markdown, so the text around the links is
    HTML-escaped: raw HTML written in a title must not reach the page.
    """
    text = note.text
    marker = _CALLOUT_MARKER.search(text, line.start, line.end)
    position = marker.end() if marker else line.end
    pieces: list[str] = []
    while edit_index < len(edits) and edits[edit_index][0] < line.end:
        edit_start, edit_end, kind, record = edits[edit_index]
        edit_index += 1
        if edit_start < position:
            continue
        pieces.append(html.escape(text[position:edit_start], quote=True))
        if kind == "tag":
            pieces.append(_render_tag(ctx, record))
        elif kind == "link" and record.kind != "embed":
            pieces.append(_render_link(ctx, note, record))
        elif kind == "link":
            pieces.append(escape_text(_default_display(record)))
        position = edit_end
    pieces.append(html.escape(text[position:line.end], quote=True))
    return "".join(pieces).strip(), edit_index


def _excess_indent_end(text: str, start: int, end: int) -> int | None:
    """Return where the indentation at ``start`` ends when it is wider than
    ``MAX_INDENT_COLUMNS`` (tabs count 4), else None."""
    if end - start <= MAX_INDENT_COLUMNS // 4 or text[start] not in " \t":
        return None  # too short or not indented: at most 4 columns per character
    columns = 0
    position = start
    while position < end and text[position] in " \t":
        columns += 4 - columns % 4 if text[position] == "\t" else 1
        position += 1
    if columns <= MAX_INDENT_COLUMNS or position == end:
        return None
    return position


def _in_code_block(note: Note, line_number: int) -> bool:
    return any(block.line <= line_number <= block.end_line for block in note.code_blocks)


def _block_span_html(block_id: str) -> str:
    return f'<span class="kb-block" id="{escape_text(block_anchor(block_id))}"></span>'


def _advance(edits: list, index: int, line_end: int) -> int:
    while index < len(edits) and edits[index][0] < line_end:
        index += 1
    return index


def _fold_section(ctx: RenderContext, note: Note) -> tuple[int, int] | None:
    """Line range (heading line, last line) of the section to fold, or None."""
    if not ctx.fold_heading:
        return None
    wanted = ctx.fold_heading.casefold()
    for index, heading in enumerate(note.headings):
        if heading.text.casefold() == wanted:
            last = note.text.count("\n") + 1
            for later in note.headings[index + 1:]:
                if later.level <= heading.level:
                    last = later.line - 1
                    break
            return heading.line, last
    return None


def _admonition_header(callout: Callout) -> str:
    """Return the admonition marker and type of ``callout``; the caller adds the title."""
    kind = CALLOUT_TYPES.get(callout.type, "note")
    marker = {"+": "???+", "-": "???"}.get(callout.fold or "", "!!!")
    return f"{marker} {kind}"


def _render_tag(ctx: RenderContext, tag) -> str:
    label = escape_text("#" + tag.written)
    url = ctx.tag_url(tag.name)
    if url is None:
        return f'<span class="kb-tag">{label}</span>'
    return f'<a class="kb-tag" href="{escape_text(url)}">{label}</a>'


def _link_url(ctx: RenderContext, link: Link) -> str | None:
    """Relative URL of a resolved link, with the fragment of its heading or block."""
    target = link.target
    if target is None:
        return None
    url = "" if target == ctx.page_path else ctx.url_for(target)
    if url is None:
        return None
    fragment = None
    if link.heading:
        fragment = ctx.anchor_for(target, link.heading)
    elif link.block:
        fragment = block_anchor(link.block)
    elif link.fragment and _extension(target) == "pdf":
        fragment = link.fragment
    if fragment:
        url = f"{url}#{quote(fragment, safe='-_.~:/=&')}"
    return url or "./"


def _render_link(ctx: RenderContext, note: Note, link: Link) -> str:
    if link.syntax == "markdown":
        display = link.display if link.display is not None else escape_text(link.target_text)
        display = display.replace("|", "&#124;")
    else:
        display = escape_text(_default_display(link, note))
    url = _link_url(ctx, link)
    if url is None:
        return _unresolved(link, display)
    attributes = f'class="kb-link" href="{escape_text(url)}"'
    if link.target in ctx.vault.notes:
        attributes += f' data-kb-note="{escape_text(link.target)}"'
        if link.heading:
            attributes += f' data-kb-heading="{escape_text(link.heading[-1])}"'
    return f"<a {attributes}>{display}</a>"


def _unresolved(link: Link, display: str) -> str:
    if link.would_create:
        title = f"No note named '{link.target_text}' yet"
    else:
        title = "Link points outside the vault"
    return f'<span class="kb-unresolved" title="{escape_text(title)}">{display}</span>'


def _render_embed(
    ctx: RenderContext, note: Note, link: Link, stack: list[str], prefix: str, content: str,
    line: _Line,
) -> str:
    target = link.target
    if target is None:
        # Shown as an unresolved link: the "!" is syntax, not part of the name.
        return _unresolved(link, escape_text(_default_display(link)))

    extension = _extension(target)
    target_note = ctx.vault.notes.get(target)
    if target_note is not None:
        body = _transclude(ctx, target_note, link, stack)
    elif target.startswith("snippets/") and extension == "py":
        body = ctx.snippet_embed(target, link.fragment)
    else:
        return _media(ctx, link, target, extension)

    # A transcluded block starts on a line of its own and repeats the embedding line's prefix.
    body_lines = body.split("\n")
    joined = ("\n" + prefix).join(body_lines)
    return "\n" + prefix + "\n" + prefix + joined + "\n" + prefix + "\n" + prefix


def _transclude(ctx: RenderContext, target: Note, link: Link, stack: list[str]) -> str:
    key = target.path
    if link.heading:
        key += "#" + "#".join(link.heading)
    elif link.block:
        key += "#^" + link.block
    title = escape_text(_default_display(link) if link.display is None else link.display)
    url = _link_url(ctx, link)
    source = (
        f'<a class="kb-embed-source" href="{escape_text(url)}">{title}</a>' if url
        else f'<span class="kb-embed-source">{title}</span>'
    )

    if key in stack:
        return (
            f'<span class="kb-embed-stop">{source}: embed cycle stopped here '
            f'(this note is already shown above)</span>'
        )
    if len(stack) > ctx.max_depth:
        return (
            f'<span class="kb-embed-stop">{source}: embeds nested deeper than '
            f'{ctx.max_depth} levels are not shown</span>'
        )

    if link.heading:
        span = _section_span(target, link.heading)
    elif link.block:
        span = _block_span(target, link.block)
    else:
        span = (target.body_start, len(target.text))
    if span is None:
        return f'<span class="kb-embed-stop">{source}: section not found</span>'

    ctx.embedded_notes.add(target.path)
    inner = _render_span(ctx, target, span[0], span[1], stack + [key])
    indented = "\n".join(INDENT + line if line.strip() else "" for line in inner.split("\n"))
    return f'!!! kb-embed ""\n{INDENT}{source}\n\n{indented}\n'


def _media(ctx: RenderContext, link: Link, target: str, extension: str) -> str:
    url = ctx.url_for(target)
    if url is None:
        return _unresolved(link, escape_text(link.target_text))
    src = escape_text(url)
    name = escape_text(link.display or target.rsplit("/", 1)[-1])
    if extension in IMAGE_EXTENSIONS:
        size = ""
        if link.size:
            width, _, height = link.size.partition("x")
            size = f' width="{width}"' + (f' height="{height}"' if height else "")
        return f'<img class="kb-image" src="{src}" alt="{name}"{size}>'
    if extension == "pdf":
        page = f"#{quote(link.fragment, safe='=&')}" if link.fragment else ""
        return (
            f'<object class="kb-pdf" data="{src}{escape_text(page)}" type="application/pdf">'
            f'<a href="{src}">{name}</a></object>'
        )
    if extension in VIDEO_EXTENSIONS:
        return f'<video class="kb-video" controls src="{src}"></video>'
    if extension in AUDIO_EXTENSIONS:
        return f'<audio class="kb-audio" controls src="{src}"></audio>'
    return f'<a class="kb-link" href="{src}">{name}</a>'
