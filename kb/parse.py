"""Parse one Obsidian note into links, tags, headings, blocks, callouts and code blocks.

The parser follows Obsidian's syntax rule by rule (wikilinks, embeds, Markdown links, front
matter properties, tags, block ids, callouts) and never looks for links or tags inside code
or math. It works in two passes over the text:

1. A line pass finds fenced and indented code blocks and the front matter, and blanks them out
   (every character but line breaks becomes a space), so offsets and line numbers stay valid.
2. One combined inline pattern scans what is left from left to right. Whichever construct
   starts first wins, which is how ``$[[y_i = k]]$`` stays math while ``[[Cost $5]]`` stays a
   link. Matches are blanked in turn, and tags and block ids are read from the result.

Link targets are not resolved here; see :mod:`kb.vault`.

NOTE: Setext headings (a line underlined with ``===``) are not recognised, and links inside
``%% comments %%`` count as links, as they do in Obsidian's graph.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from typing import Any
from urllib.parse import unquote

import yaml

from kb.model import Block, Callout, CodeBlock, Heading, Link, Note, Problem, Tag

__all__ = [
    "ATTACHMENT_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "blank",
    "mask_code",
    "parse_note",
    "split_wikilink",
]

IMAGE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "gif", "bmp", "svg", "webp", "avif", "tif", "tiff"}
)
AUDIO_EXTENSIONS = frozenset({"mp3", "wav", "m4a", "ogg", "3gp", "flac", "webm"})
VIDEO_EXTENSIONS = frozenset({"mp4", "webm", "ogv", "mov", "mkv"})
ATTACHMENT_EXTENSIONS = IMAGE_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS | {"pdf"}

# Caps that keep hostile input linear: YAML nodes walked for property links, and the
# number of links recorded from one note.
MAX_PROPERTY_NODES = 10_000
MAX_LINKS_PER_NOTE = 200_000

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NOT_LINE_BREAK = re.compile(r"[^\r\n]")

# Blockquote prefix: "> ", ">", "> > " ...
_QUOTE_PREFIX = re.compile(r"(?:[ \t]{0,3}>[ \t]?)*")
_FENCE_OPEN = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$)")

# The inline scanner. Alternatives are tried in order at each position, positions left to
# right, so the construct that starts first wins.
# The leading lookahead lets the regex engine skip positions that cannot start any construct,
# which makes the scan about three times faster on typical notes.
_INLINE = re.compile(
    r"""
    (?=[`$!\[])(?:
    (?P<code>                          # code span: a backtick run closed by an equal run,
      (?<!`)(?P<ticks>`+)(?!`)         # never crossing a blank line
      (?:[^\n]|\n(?![ \t]*(?:\n|\r|$)))+?
      (?<!`)(?P=ticks)(?!`)
    )
    | (?P<dmath>(?<!\\)\$\$(?:[^$]|\$(?!\$))+?\$\$)     # display math, may span lines
    | (?P<wikilink>
        (?P<bang>!?)\[\[
        (?P<inner>(?:[^\[\]\n\r]|\[(?!\[)|\](?!\]))+?)  # no "[[", "]]" or line break inside
        \]\]
      )
    | (?P<imath>                       # inline math: "$x$", not "$ x$", not "$5 and $6"
        (?<![\\$])\$(?=[^\s$])
        (?:[^$\n\r\\\[]|\\.|\[(?!\[)|\[\[(?:[^\]\n$]|\](?!\]))*\]\])+?
        (?<=[^\s\\])\$(?![\d$])
      )
    | (?P<mdlink>
        (?P<mdbang>!?)\[(?P<text>(?:[^\[\]\n\\]|\\.|\[[^\[\]\n]*\])*)\]
        \(
          [ \t]*(?P<dest><[^<>\n]*>|(?:[^\s()\\]|\\.|\([^\s()]*\))*)
          (?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'))?[ \t]*
        \)
      )
    )
    """,
    re.VERBOSE,
)

# A tag starts a line or follows white space; letters (any script), digits, _ - / and
# common emoji. It needs one character that is not a digit. General punctuation
# (U+2000-U+206F: dashes, curly quotes, the ellipsis) ends a tag, except the zero-width joiner
# and the emoji variation selector U+FE0F that emoji sequences are built from.
_TAG = re.compile(
    r"(?:(?<=\s)|^)#(?P<tag>"
    r"[\w\-/\u00a9\u00ae\u200d\u2070-\u2bff\ufe0f\U0001F000-\U0001FAFF]+)",
    re.MULTILINE,
)
_BLOCK_ID = re.compile(r"(?:^|(?<=[ \t]))\^(?P<id>[A-Za-z0-9-]+)[ \t]*$", re.MULTILINE)
_HEADING = re.compile(
    r"^(?P<quote>(?:[ \t]{0,3}>[ \t]?)*+)[ ]{0,3}(?P<hashes>#{1,6})(?:[ \t]+(?P<text>.*?))?"
    r"(?:[ \t]+#+)?[ \t]*$",
    re.MULTILINE,
)
_CALLOUT = re.compile(
    r"^(?P<prefix>(?:[ \t]{0,3}>[ \t]?)++)\[!(?P<type>[^\]\n]+)\](?P<fold>[+-]?)"
    r"(?:[ \t]+(?P<title>.*?))?[ \t]*$",
    re.MULTILINE,
)
_SIZE = re.compile(r"\d+(?:x\d+)?")
_HEADING_START = re.compile(r"#{1,6}(?:[ \t]|$)")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_FRONTMATTER_WIKILINK = re.compile(r"(!?)\[\[((?:[^\[\]\n]|\[(?!\[)|\](?!\]))+?)\]\]")


# libyaml's C parser reads front matter about five times faster than the pure-Python one
# (measured with bench/bench_parse.py); PyYAML falls back to Python when it lacks libyaml.
_BaseSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeUniqueLoader(_BaseSafeLoader):
    """Safe YAML loader that rejects duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return _BaseSafeLoader.construct_mapping(loader, node, deep=deep)


_SafeUniqueLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def blank(segment: str) -> str:
    """Replace every character of ``segment`` except line breaks with a space."""
    return _NOT_LINE_BREAK.sub(" ", segment)


def _extension(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def _is_note_path(path: str) -> bool:
    """True for a target without an attachment extension (``Name``, ``Name.md``, ``a.b``)."""
    extension = _extension(path)
    return extension == "md" or extension not in ATTACHMENT_EXTENSIONS | {"py", "ipynb"}


class _Lines:
    """Offset-to-line lookup that treats CRLF, LF and lone CR as one line break each."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)

    def span(self, text: str, line: int) -> tuple[int, int]:
        """Offsets of a 1-based line's content, without its line break."""
        start = self.starts[line - 1]
        end = self.starts[line] if line < len(self.starts) else len(text)
        while end > start and text[end - 1] in "\r\n":
            end -= 1
        return start, end


def parse_note(text: str, path: str) -> Note:
    """Parse the Markdown ``text`` of the note at vault-relative ``path``.

    Never raises on malformed input: problems are recorded in ``Note.problems``.
    """
    note = Note(path=path, text=text)
    lines = _Lines(text)

    masked = _parse_frontmatter(note, lines)
    masked = _mask_code_blocks(note, masked, lines)
    # The line-anchored patterns below know only "\n" as a line break, so a CR (alone or in
    # CRLF) becomes "\n". Offsets stay the same, and line numbers come from ``lines``.
    masked = masked.replace("\r", "\n")
    _parse_headings_and_callouts(note, masked, lines)
    masked = _parse_inline(note, masked, lines)
    _parse_tags(note, masked, lines)
    _parse_block_ids(note, masked, lines)
    return note


def mask_code(text: str) -> str:
    """Return ``text`` with front matter, code blocks, code spans and math blanked out."""
    note = Note(path="", text=text)
    lines = _Lines(text)
    masked = _parse_frontmatter(note, lines)
    masked = _mask_code_blocks(note, masked, lines)
    parts: list[str] = []
    last = 0
    for match in _INLINE.finditer(masked):
        if match.lastgroup in ("code", "dmath", "imath"):
            parts.append(masked[last : match.start()])
            parts.append(blank(match.group()))
            last = match.end()
    parts.append(masked[last:])
    return "".join(parts)


# Front matter ------------------------------------------------------------------------------


def _parse_frontmatter(note: Note, lines: _Lines) -> str:
    """Read the YAML front matter, record its properties, and return the text with it blanked."""
    text = note.text
    first_end = lines.span(text, 1)[1]
    if text[:first_end].rstrip() != "---":
        return text

    closing = None
    for line in range(2, len(lines.starts) + 1):
        start, end = lines.span(text, line)
        if text[start:end].rstrip() in ("---", "..."):
            closing = line
            break
    if closing is None:
        note.problems.append(
            Problem(
                note.path, 1, "warning", "unclosed-frontmatter",
                "front matter opened with '---' is never closed; add a line '---' after the "
                "properties (the note is read as if it had none)",
            )
        )
        return text

    yaml_start = lines.starts[1]
    yaml_end = lines.starts[closing - 1]
    body_start = lines.starts[closing] if closing < len(lines.starts) else len(text)
    note.body_start = body_start
    note.body_line = closing + 1
    source = text[yaml_start:yaml_end]

    data = _load_yaml(note, source)
    if data is not None:
        note.frontmatter = data
        _read_properties(note, source, lines)
    return blank(text[:body_start]) + text[body_start:]


def _load_yaml(note: Note, source: str) -> dict[str, Any] | None:
    tab_indent = re.search(r"^ *\t", source, re.MULTILINE)
    if tab_indent:
        line = 2 + source[: tab_indent.start()].count("\n")
        note.problems.append(
            Problem(
                note.path, line, "warning", "invalid-frontmatter",
                "front matter is indented with a tab; YAML allows only spaces for "
                "indentation, so replace the tab with spaces",
            )
        )
        return None
    try:
        data = yaml.load(source, Loader=_SafeUniqueLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = 2 + mark.line if mark is not None else 1
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        note.problems.append(
            Problem(
                note.path, line, "warning", "invalid-frontmatter",
                f"invalid YAML in front matter ({reason}); fix the syntax or quote the "
                "value (the note's properties are ignored until then)",
            )
        )
        return None
    except RecursionError:
        note.problems.append(
            Problem(
                note.path, 2, "warning", "invalid-frontmatter",
                "front matter is nested too deeply to read; flatten the properties",
            )
        )
        return None
    if data is None:
        return {}
    if _expanded_size(data, MAX_PROPERTY_NODES) > MAX_PROPERTY_NODES:
        note.problems.append(
            Problem(
                note.path, 2, "warning", "invalid-frontmatter",
                f"front matter expands to more than {MAX_PROPERTY_NODES} values through YAML "
                "aliases (*name); write the values out (the note's properties are ignored)",
            )
        )
        return None
    if not isinstance(data, dict):
        note.problems.append(
            Problem(
                note.path, 2, "warning", "invalid-frontmatter",
                f"front matter is a {type(data).__name__}, not a set of 'key: value' "
                "properties; write one property per line",
            )
        )
        return None
    return {str(key): value for key, value in data.items()}


def _expanded_size(value: Any, limit: int) -> int:
    """Count the values in ``value`` with every YAML alias expanded, stopping past ``limit``.

    Sizes of shared lists and mappings are memoised by identity, so an alias bomb costs time
    in proportion to its text, not to its expansion. A self-containing value counts as over
    the limit.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, children_done = stack.pop()
        if not isinstance(item, (list, dict)):
            continue
        key = id(item)
        children = list(item.values()) if isinstance(item, dict) else item
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes.get(id(child), 1) for child in children)
            sizes[key] = min(total, limit + 1)
            continue
        if key in sizes:
            continue
        if key in on_path:
            return limit + 1
        on_path.add(key)
        stack.append((item, True))
        stack.extend((child, False) for child in children)
    return sizes.get(id(value), 1)


def _key_line(source: str, key: str) -> int:
    match = re.search(rf"^{re.escape(key)}[ \t]*:", source, re.MULTILINE)
    return 2 + (source[: match.start()].count("\n") if match else 0)


def _iter_strings(value: Any, budget: list[int], seen: set[int]):
    """Yield the strings in a YAML value, at most ``budget[0]`` nodes, each shared node once.

    YAML aliases make a small file stand for a huge tree (an "alias bomb"), so nodes are
    visited by identity and the walk stops when the budget runs out.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        budget[0] -= 1
        if budget[0] < 0:
            return
        if isinstance(item, str):
            yield item
        elif isinstance(item, (list, tuple, dict)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            children = list(item.values()) if isinstance(item, dict) else list(item)
            stack.extend(reversed(children))


def _read_properties(note: Note, source: str, lines: _Lines) -> None:
    data = note.frontmatter
    budget = [MAX_PROPERTY_NODES]
    seen: set[int] = set()

    # Tags: a list, or the legacy comma- or space-separated string. The key 'tag' is not read
    # (deprecated in Obsidian 1.4, ignored since 1.9).
    if "tags" in data and data["tags"] is not None:
        line = _key_line(source, "tags")
        raw_tags = data["tags"]
        items = (
            re.split(r"[,\s]+", raw_tags) if isinstance(raw_tags, str)
            else raw_tags if isinstance(raw_tags, list) else None
        )
        if items is None:
            note.problems.append(
                Problem(
                    note.path, line, "warning", "invalid-property",
                    f"'tags' must be a list or text, not {type(raw_tags).__name__} "
                    f"{raw_tags!r}; write a list such as "
                    "'tags: [ml, attention]'",
                )
            )
            items = []
        for item in items:
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                note.problems.append(
                    Problem(
                        note.path, line, "warning", "invalid-property",
                        f"tag {item!r} is not text; write each tag as a word",
                    )
                )
                continue
            written = str(item).strip().lstrip("#")
            if written:
                note.tags.append(Tag(written.lower(), written, note.path, line, "frontmatter"))

    # Aliases: a list or a single string.
    aliases = data.get("aliases")
    if isinstance(aliases, str):
        note.aliases = [aliases]
    elif isinstance(aliases, list):
        note.aliases = [str(alias) for alias in aliases if isinstance(alias, (str, int, float))]

    # Links in any text or list property, e.g. requires: ["[[Attention]]"].
    search_from = 0
    for key, value in data.items():
        for string in _iter_strings(value, budget, seen):
            for match in _FRONTMATTER_WIKILINK.finditer(string):
                if not match.group(2).strip():
                    continue
                raw = match.group()
                offset = note.text.find(raw, lines.starts[1] + search_from)
                if offset < 0:
                    offset = note.text.find(raw, lines.starts[1])
                else:
                    search_from = offset - lines.starts[1] + len(raw)
                line = lines.line_of(offset) if offset >= 0 else _key_line(source, key)
                link = _wikilink(
                    note, raw, match.group(2), bool(match.group(1)), line,
                    max(offset, 0), max(offset, 0) + len(raw), syntax="property",
                )
                link.property = key
                note.links.append(link)

    if isinstance(data.get("requires"), str):
        data["requires"] = [data["requires"]]
    requires = data.get("requires")
    if requires is not None and not isinstance(requires, list):
        note.problems.append(
            Problem(
                note.path, _key_line(source, "requires"), "warning", "invalid-property",
                "'requires' must be a list of quoted wikilinks, e.g. "
                "requires: [\"[[Attention]]\"]",
            )
        )


# Code blocks --------------------------------------------------------------------------------


def _mask_code_blocks(note: Note, text: str, lines: _Lines) -> str:
    """Record fenced and indented code blocks and blank them out."""
    parts: list[str] = []
    last = 0

    fence: tuple[str, int, str, int, int] | None = None  # char, length, info, line, indent
    fence_lines: list[str] = []
    in_list = False
    previous_blank = True
    indented: list[int] = []  # lines of the indented code block being read

    def flush_indented() -> None:
        nonlocal last
        while indented and not text[slice(*lines.span(text, indented[-1]))].strip():
            indented.pop()
        if not indented:
            return
        first, final = indented[0], indented[-1]
        start, _ = lines.span(text, first)
        _, end = lines.span(text, final)
        code = "\n".join(
            _strip_indent(text[slice(*lines.span(text, line))], 4) for line in indented
        )
        note.code_blocks.append(
            CodeBlock("", "", note.path, first, first, final, code + "\n", fenced=False)
        )
        parts.append(text[last:start])
        parts.append(blank(text[start:end]))
        last = end
        indented.clear()

    for line in range(note.body_line, len(lines.starts) + 1):
        start, end = lines.span(text, line)
        content = text[start:end]
        quote = _QUOTE_PREFIX.match(content).group()
        inner = content[len(quote):]

        if fence is not None:
            char, length, info, open_line, indent = fence
            stripped = inner.strip()
            if stripped and set(stripped) == {char} and len(stripped) >= length:
                lang = info.split()[0].lower() if info.split() else ""
                note.code_blocks.append(
                    CodeBlock(
                        lang, info, note.path, open_line, open_line + 1, line,
                        "".join(code_line + "\n" for code_line in fence_lines), fenced=True,
                    )
                )
                fence = None
                fence_lines = []
                open_start = lines.starts[open_line - 1]
                parts.append(text[last:open_start])
                parts.append(blank(text[open_start:end]))
                last = end
            else:
                fence_lines.append(_strip_indent(inner, indent))
            continue

        is_blank = not inner.strip()
        # Only spaces and tabs indent (a no-break space does not, as in CommonMark).
        expanded = inner.expandtabs(4)
        indent_width = len(expanded) - len(expanded.lstrip(" "))

        if indented:
            if is_blank or indent_width >= 4:
                indented.append(line)
                previous_blank = is_blank
                continue
            flush_indented()

        opening = _FENCE_OPEN.match(inner)
        if opening and (in_list or len(opening.group("indent").expandtabs(4)) <= 3):
            info = opening.group("info").strip()
            if not (opening.group("fence")[0] == "`" and "`" in info):
                fence = (
                    opening.group("fence")[0], len(opening.group("fence")), info, line,
                    len(opening.group("indent")),
                )
                continue

        if not is_blank and indent_width >= 4 and previous_blank and not in_list and not quote:
            indented.append(line)
            previous_blank = False
            continue

        if _LIST_ITEM.match(inner):
            in_list = True
        elif not is_blank and indent_width < 2 and previous_blank:
            in_list = False
        previous_blank = is_blank

    flush_indented()
    if fence is not None:
        # An unclosed fence runs to the end of the note, as in CommonMark.
        char, length, info, open_line, _indent = fence
        lang = info.split()[0].lower() if info.split() else ""
        note.code_blocks.append(
            CodeBlock(
                lang, info, note.path, open_line, open_line + 1, len(lines.starts),
                "".join(code_line + "\n" for code_line in fence_lines), fenced=True,
            )
        )
        open_start = lines.starts[open_line - 1]
        parts.append(text[last:open_start])
        parts.append(blank(text[open_start:]))
        last = len(text)
    parts.append(text[last:])
    return "".join(parts)


def _strip_indent(line: str, width: int) -> str:
    removed = 0
    index = 0
    while index < len(line) and removed < width and line[index] in " \t":
        removed += 4 if line[index] == "\t" else 1
        index += 1
    return line[index:]


# Headings and callouts ----------------------------------------------------------------------


def _parse_headings_and_callouts(note: Note, masked: str, lines: _Lines) -> None:
    for match in _HEADING.finditer(masked, note.body_start):
        text = note.text[match.start("text") : match.end("text")].strip() if match.group("text") else ""
        note.headings.append(
            Heading(
                len(match.group("hashes")), text, note.path, lines.line_of(match.start()),
                match.start(), match.end(),
            )
        )

    for match in _CALLOUT.finditer(masked, note.body_start):
        depth = match.group("prefix").count(">")
        line = lines.line_of(match.start())
        if line > 1:
            previous = masked[slice(*lines.span(masked, line - 1))]
            previous_depth = _QUOTE_PREFIX.match(previous).group().count(">")
            if previous_depth >= depth:
                continue  # not the first line of its blockquote
        kind = match.group("type").strip().lower()
        title = (match.group("title") or "").strip() or kind.capitalize()
        note.callouts.append(
            Callout(kind, title, match.group("fold") or None, depth, note.path, line)
        )


# Links, code spans and math -----------------------------------------------------------------


def _parse_inline(note: Note, masked: str, lines: _Lines) -> str:
    """Record wikilinks and Markdown links; return the text with links, code and math blanked."""
    parts: list[str] = []
    last = 0
    dropped = 0
    first_dropped = 0
    for match in _INLINE.finditer(masked, note.body_start):
        group = match.lastgroup
        start, end = match.span()
        link = None
        # "[[ ]]" is text, like "[[]]": a wikilink needs something between the brackets.
        if group == "wikilink" and match.group("inner").strip():
            if len(note.links) < MAX_LINKS_PER_NOTE:
                link = _wikilink(
                    note, match.group(), match.group("inner"), bool(match.group("bang")),
                    lines.line_of(start), start, end,
                )
            else:
                dropped += 1
        elif group == "mdlink":
            link = _markdown_link(note, match, lines)
            if link is not None and len(note.links) >= MAX_LINKS_PER_NOTE:
                link = None
                dropped += 1
        if link is not None:
            note.links.append(link)
        elif dropped == 1 and not first_dropped:
            first_dropped = lines.line_of(start)
        parts.append(masked[last:start])
        parts.append(blank(match.group()))
        last = end
    parts.append(masked[last:])
    if dropped:
        note.problems.append(
            Problem(
                note.path, first_dropped, "warning", "too-many-links",
                f"note has over {MAX_LINKS_PER_NOTE} links, so the {dropped} more links from "
                "this line on are ignored; split the note",
            )
        )
    return "".join(parts)


def split_wikilink(inner: str) -> tuple[str, str | None, str | None]:
    """Split the text between ``[[`` and ``]]`` into (target, subpath, display).

    The first ``|`` ends the target; ``\\|`` (the table escape) counts as that ``|``.
    ``subpath`` is what follows the first ``#``, without it.
    """
    display = None
    pipe = inner.find("|")
    if pipe >= 0:
        target_part = inner[:pipe]
        if target_part.endswith("\\"):
            target_part = target_part[:-1]
        display = inner[pipe + 1 :]
    else:
        target_part = inner
    path, hash_sign, subpath = target_part.partition("#")
    return path, (subpath if hash_sign else None), display


def _wikilink(
    note: Note, raw: str, inner: str, is_embed: bool, line: int, start: int, end: int,
    syntax: str = "wikilink",
) -> Link:
    path, subpath, display = split_wikilink(inner)
    link = Link(
        source=note.path, line=line, start=start, end=end, raw=raw, syntax=syntax,
        kind="embed" if is_embed else "link",
        target_text=unicodedata.normalize("NFC", path.strip()),
    )
    if display is not None:
        display = display.strip()
        if is_embed and _SIZE.fullmatch(display) and not _is_note_path(link.target_text):
            link.size = display
        else:
            link.display = display
    _apply_subpath(link, subpath)
    return link


def _apply_subpath(link: Link, subpath: str | None) -> None:
    if subpath is None:
        return
    if link.target_text and not _is_note_path(link.target_text):
        link.fragment = subpath.strip() or None
    elif subpath.strip().startswith("^"):
        link.block = subpath.strip()[1:].strip() or None
    else:
        segments = [segment.strip() for segment in subpath.split("#") if segment.strip()]
        link.heading = segments or None


def _markdown_link(note: Note, match: re.Match[str], lines: _Lines) -> Link | None:
    destination = match.group("dest").strip()
    if destination.startswith("<") and destination.endswith(">"):
        destination = destination[1:-1]
    if not destination or _URL_SCHEME.match(destination) or destination.startswith("//"):
        return None
    path, hash_sign, subpath = destination.partition("#")
    path = unicodedata.normalize("NFC", unquote(path).strip())
    link = Link(
        source=note.path, line=lines.line_of(match.start()), start=match.start(),
        end=match.end(), raw=match.group(), syntax="markdown",
        kind="embed" if match.group("mdbang") else "link", target_text=path,
        display=match.group("text"),
    )
    _apply_subpath(link, unquote(subpath) if hash_sign else None)
    return link


# Tags and block ids -------------------------------------------------------------------------


def _parse_tags(note: Note, masked: str, lines: _Lines) -> None:
    for match in _TAG.finditer(masked, note.body_start):
        written = match.group("tag").rstrip("/")
        if not written or written.isdigit():
            continue  # "#1984" is not a tag: a tag needs one character that is not a digit
        note.tags.append(
            Tag(written.lower(), written, note.path, lines.line_of(match.start()), "inline",
                match.start(), match.end())
        )


def _parse_block_ids(note: Note, masked: str, lines: _Lines) -> None:
    run_starts: dict[int, int] = {}
    for match in _BLOCK_ID.finditer(masked, note.body_start):
        line = lines.line_of(match.start())
        line_text = masked[slice(*lines.span(masked, line))]
        own_line = not line_text[: match.start() - lines.starts[line - 1]].strip(" \t>")
        if own_line:
            # "^id" alone on a line names the block just above it (a list, quote or table).
            end_line = line - 1
            while end_line >= note.body_line and not _line_content(masked, lines, end_line):
                end_line -= 1
            start_line = end_line
        else:
            start_line = end_line = line
        if not _LIST_ITEM.match(_line_content(masked, lines, start_line) or "x") or own_line:
            start_line = _run_start(note, masked, lines, start_line, run_starts)
        note.blocks.append(
            Block(match.group("id"), note.path, line, max(start_line, note.body_line), max(end_line, note.body_line))
        )


def _run_start(
    note: Note, masked: str, lines: _Lines, line: int, run_starts: dict[int, int]
) -> int:
    """Return the first line of the run of lines that ends at ``line`` and has no blank line
    and no heading above ``line`` in it.

    ``run_starts`` memoises the answer per line, so a note with a block id on each of its
    lines costs time in proportion to its length, not to its length squared.
    """
    walked = []
    start = line
    while start not in run_starts and start - 1 >= note.body_line:
        above = _line_content(masked, lines, start - 1)
        if not above or _HEADING_START.match(above):
            break
        walked.append(start)
        start -= 1
    start = run_starts.get(start, start)
    for walked_line in walked:
        run_starts[walked_line] = start
    run_starts[line] = start
    return start


def _line_content(text: str, lines: _Lines, line: int) -> str:
    content = text[slice(*lines.span(text, line))]
    return content.strip(" \t>")
