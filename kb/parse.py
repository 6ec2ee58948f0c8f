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
import json
import re
import unicodedata
from typing import Any
from urllib.parse import unquote

import yaml

from kb.model import Block, Callout, CodeBlock, ExternalLink, Heading, Link, Note, Problem, Tag

__all__ = [
    "ATTACHMENT_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "INLINE_PATTERN",
    "blank",
    "blank_spans",
    "mask_code",
    "masked_text",
    "parse_note",
    "split_wikilink",
    "verbatim_spans",
]

IMAGE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "gif", "bmp", "svg", "webp", "avif", "tif", "tiff"}
)
AUDIO_EXTENSIONS = frozenset({"mp3", "wav", "m4a", "ogg", "3gp", "flac", "webm"})
VIDEO_EXTENSIONS = frozenset({"mp4", "webm", "ogv", "mov", "mkv"})
ATTACHMENT_EXTENSIONS = IMAGE_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS | {"pdf"}

# Fast paths for common input. Each returns exactly what the general code returns; tests set
# this to False to compare the two.
_FAST_PATHS = True

# Caps that keep hostile input linear: YAML nodes walked for property links, and the
# number of links recorded from one note.
MAX_PROPERTY_NODES = 10_000
MAX_LINKS_PER_NOTE = 200_000
# Nesting that the site shows as written: quote or callout levels, and columns of indentation
# after them. Python-Markdown parses nested blocks recursively and raises RecursionError a few
# hundred levels down, so the site shows deeper lines at these limits (see kb.site_markdown).
MAX_QUOTE_DEPTH = 32
MAX_INDENT_COLUMNS = 128

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NOT_LINE_BREAK = re.compile(r"[^\r\n]")

# Blockquote prefix: "> ", ">", "> > " ...
_QUOTE_PREFIX = re.compile(r"(?:[ \t]{0,3}>[ \t]?)*")
_FENCE_OPEN = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$)")

# The inline scanner. Alternatives are tried in order at each position, positions left to
# right, so the construct that starts first wins. Runs of ordinary characters are matched
# whole (``[^`\n]++``) rather than one character per step of a lazy loop; a closing
# delimiter cannot start inside such a run, so the matches are the same, found about 1.4
# times faster.
# The leading lookahead lets the regex engine skip positions that cannot start any construct,
# which makes the scan about three times faster on typical notes.
_INLINE = re.compile(
    r"""
    (?=[`$!\[])(?:
    (?P<code>                          # code span: a backtick run closed by an equal run,
      (?<!`)(?P<ticks>`+)(?!`)         # never crossing a blank line
      (?:[^`\n]++|`+|\n(?![ \t]*(?:\n|\r|$)))+?
      (?<!`)(?P=ticks)(?!`)
    )
    | (?P<dmath>(?<!\\)\$\$(?:[^$]|\$(?!\$))+?\$\$)     # display math, may span lines
    | (?P<wikilink>
        (?P<bang>!?)\[\[
        (?P<inner>(?:[^\[\]\n\r]++|\[(?!\[)|\](?!\]))+?)  # no "[[", "]]" or line break inside
        \]\]
      )
    | (?P<imath>                       # inline math: "$x$", not "$ x$", not "$5 and $6"
        (?<![\\$])\$(?=[^\s$])
        (?:[^$\n\r\\\[]++|\\.|\[(?!\[)|\[\[(?:[^\]\n$]|\](?!\]))*\]\])+?
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
# Both patterns start with their literal character and test what precedes it in a lookbehind
# (``#(?<=(?<!\S)#)`` is "a # at the start or after white space"), so the regex engine can jump
# from one "#" or "^" to the next; a leading lookbehind made it try every position, about ten
# times slower.
INLINE_PATTERN = _INLINE
"""The inline scanner, for callers that show inline code and math as the parse reads them."""

_TAG = re.compile(
    r"#(?<=(?<!\S)#)(?P<tag>"
    r"[\w\-/\u00a9\u00ae\u200d\u2070-\u2bff\ufe0f\U0001F000-\U0001FAFF]+)"
)
_BLOCK_ID = re.compile(r"\^(?<=(?<![^\n \t])\^)(?P<id>[A-Za-z0-9-]+)[ \t]*$", re.MULTILINE)
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


def _after_line_break(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """Compile a finder for the line breaks followed by a line that ``pattern`` matches.

    ``pattern`` starts with "^" and matches within one line. Searching for "\n" first lets
    the regex engine skip to the next line break, where a leading "^" makes it try every
    position; that halves the time of a scan.
    """
    assert pattern.pattern.startswith("^")
    return re.compile(r"\n(?=%s)" % pattern.pattern[1:], pattern.flags)


def _iter_line_matches(
    pattern: re.Pattern[str], finder: re.Pattern[str], text: str, position: int
):
    """Yield the matches of ``pattern`` at line starts from ``position``, a line start on.

    Gives the same matches as ``pattern.finditer(text, position)`` for a one-line pattern.
    """
    match = pattern.match(text, position)
    if match is not None:
        yield match
        position = match.end()
    for line_break in finder.finditer(text, position):
        yield pattern.match(text, line_break.end())


_HEADING_FINDER = _after_line_break(_HEADING)
_CALLOUT_FINDER = _after_line_break(_CALLOUT)
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
    if "\r" in segment:
        return _NOT_LINE_BREAK.sub(" ", segment)
    if "\n" not in segment:
        return " " * len(segment)
    return "\n".join([" " * len(part) for part in segment.split("\n")])


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
        if "\r" in text:
            self.starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
            return
        # Only "\n" breaks lines: str.find in a loop is about three times faster than finditer.
        starts = [0]
        find = text.find
        position = find("\n")
        while position >= 0:
            position += 1
            starts.append(position)
            position = find("\n", position)
        self.starts = starts

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
    # The line-anchored patterns below know only "\n" as a line break, so the CR of a CRLF
    # becomes a space and a lone CR becomes "\n". Offsets stay the same, and line numbers
    # come from ``lines``. (A CRLF turned into "\n\n" would read as a blank line, which
    # stops a code span.)
    if "\r" in masked:
        masked = masked.replace("\r\n", " \n").replace("\r", "\n")
    _parse_headings_and_callouts(note, masked, lines)
    masked = _parse_inline(note, masked, lines)
    _parse_tags(note, masked, lines)
    _parse_block_ids(note, masked, lines)
    return note


def mask_code(text: str) -> str:
    """Return ``text`` with front matter, code blocks, code spans and math blanked out."""
    return masked_text(parse_note(text, ""))


def verbatim_spans(note: Note) -> list[tuple[int, int]]:
    """Return the offsets of the note's front matter, code and math, in text order."""
    spans = sorted(note.verbatim)
    if note.body_start:
        spans.insert(0, (0, note.body_start))
    return spans


def blank_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """Blank the ``spans`` of ``text`` (sorted by start; they may overlap), keeping line breaks."""
    parts: list[str] = []
    last = 0
    for start, end in spans:
        start = max(start, last)
        if end <= start:
            continue
        parts.append(text[last:start])
        parts.append(blank(text[start:end]))
        last = end
    parts.append(text[last:])
    return "".join(parts)


def masked_text(note: Note) -> str:
    """Return the note's text with front matter, code and math blanked, read from its parse."""
    return blank_spans(note.text, verbatim_spans(note))


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
    # Line breaks become "\n", so the line-anchored patterns below count a lone CR too.
    source = _LINE_BREAK.sub("\n", text[yaml_start:yaml_end])

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
    if _FAST_PATHS:
        simple = _load_simple_yaml(source)
        if simple is not None:
            return simple
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


# Most front matter is a few "key: value" lines, flow lists and block lists of words or quoted
# strings. _load_simple_yaml reads exactly that subset in Python, which is several times
# faster than a libyaml call per note, and returns None for anything else, which then goes
# to libyaml. It returns the dict that libyaml would build for the same text.
# PyYAML's SafeLoader reads these plain words as booleans or null; other plain scalars that
# start with a letter are strings.
_YAML_WORDS: dict[str, Any] = {
    **dict.fromkeys(["yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"], True),
    **dict.fromkeys(["no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"], False),
    **dict.fromkeys(["null", "Null", "NULL", "~"], None),
}
_SIMPLE_KEY_LINE = re.compile(r"([^\W\d_][\w.\-]*(?: [\w.\-]+)*):(?: +(.*))?")
_SIMPLE_LIST_ITEM = re.compile(r"( *)- +(.*)")
_BLOCK_PLAIN = re.compile(r"[^\W\d_][^:]*(?::[^ :][^:]*)*")
_FLOW_ITEM = re.compile(
    r" *(?:'((?:[^']|'')*)'|\"([^\"\\]*)\"|([^\W\d_][^,\[\]{}:'\"]*|0|[1-9][0-9]*)) *(,|$)"
)
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _simple_scalar(text: str) -> tuple[bool, Any]:
    """Read one scalar of a block mapping or block list; ``(False, None)`` when not simple."""
    if text[:1] == "'":
        if len(text) >= 2 and text[-1] == "'" and "'" not in text[1:-1].replace("''", ""):
            return True, text[1:-1].replace("''", "'")
        return False, None
    if text[:1] == '"':
        if len(text) >= 2 and text[-1] == '"' and not any(c in text[1:-1] for c in '"\\'):
            return True, text[1:-1]
        return False, None
    if _DECIMAL.fullmatch(text):
        return True, int(text)
    if _BLOCK_PLAIN.fullmatch(text):
        return True, _YAML_WORDS.get(text, text)
    return False, None


def _simple_flow_list(text: str) -> list[Any] | None:
    """Read ``[a, 'b', "c"]`` written on one line; None when it is not that simple."""
    inner = text[1:-1]
    if not inner.strip(" "):
        return []
    items: list[Any] = []
    position = 0
    while True:
        match = _FLOW_ITEM.match(inner, position)
        if match is None:
            return None
        single, double, plain, separator = match.groups()
        if single is not None:
            items.append(single.replace("''", "'"))
        elif double is not None:
            items.append(double)
        else:
            plain = plain.rstrip(" ")
            items.append(int(plain) if _DECIMAL.fullmatch(plain) else _YAML_WORDS.get(plain, plain))
        if not separator:
            return items
        position = match.end()


def _load_simple_yaml(source: str) -> dict[str, Any] | None:
    """Read front matter written in the simple subset described above, or return None."""
    if "#" in source or "\t" in source:
        return None
    data: dict[str, Any] = {}
    key = None  # the key whose value is an empty scalar or a block list being read
    indent = -1  # indentation of that block list's "-", or -1 before its first item
    size = 1
    for line in source.split("\n"):
        if not line.strip(" "):
            continue
        if not line.isprintable():
            return None
        if key is not None:
            item = _SIMPLE_LIST_ITEM.fullmatch(line)
            if item is not None and (indent < 0 or len(item.group(1)) == indent):
                found, value = _simple_scalar(item.group(2).rstrip(" "))
                if not found:
                    return None
                if indent < 0:
                    indent = len(item.group(1))
                    data[key] = []
                data[key].append(value)
                size += 1
                continue
            key = None
        match = _SIMPLE_KEY_LINE.fullmatch(line)
        if match is None:
            return None
        name, text = match.group(1), (match.group(2) or "").rstrip(" ")
        if name in data or name in _YAML_WORDS:
            return None
        size += 1
        if not text:
            data[name] = None
            key, indent = name, -1
        elif text[0] == "[" and text[-1] == "]":
            items = _simple_flow_list(text)
            if items is None:
                return None
            data[name] = items
            size += len(items)
        else:
            found, value = _simple_scalar(text)
            if not found:
                return None
            data[name] = value
    return data if size <= MAX_PROPERTY_NODES else None


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
    elif aliases is not None:
        note.problems.append(
            Problem(
                note.path, _key_line(source, "aliases"), "warning", "invalid-property",
                f"'aliases' must be a list of names or one name, not {type(aliases).__name__} "
                f"{aliases!r}; quote it, e.g. aliases: [\"{aliases}\"]",
            )
        )

    # Links in any text or list property, e.g. requires: ["[[Attention]]"].
    search_from = 0
    for key, value in data.items():
        for string in _iter_strings(value, budget, seen):
            if "[[" not in string:
                continue
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

    for key, value in data.items():
        if key != "tags":  # the tags check above already reports items that are not text
            _report_unquoted_links(note, source, key, value)

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
    answers = data.get("answers")
    if answers is not None and not isinstance(answers, (list, str)):
        note.problems.append(
            Problem(
                note.path, _key_line(source, "answers"), "warning", "invalid-property",
                "'answers' must be a list of quoted links to the questions this note answers, "
                "e.g. answers: [\"[[Notes#^q-attention]]\"]",
            )
        )


def _report_unquoted_links(note: Note, source: str, key: str, value: Any) -> None:
    """Warn about each ``[[A]]`` written without quotes in the property ``key``.

    YAML reads an unquoted ``[[A]]`` as a flow list that contains the list ``["A"]``, so the
    property contains no link text and the note silently loses the link. Such a value is
    looked for where a flow list (``key: [[A]]``) or a block list item (``- [[A]]``) puts it.
    """
    candidates = [value, *value] if isinstance(value, list) else [value]
    targets = [
        candidate[0][0] for candidate in candidates
        if isinstance(candidate, list) and len(candidate) == 1
        and isinstance(candidate[0], list) and len(candidate[0]) == 1
        and isinstance(candidate[0][0], str)
    ]
    if not targets:
        return
    key_match = re.search(rf"^{re.escape(key)}[ \t]*:", source, re.MULTILINE)
    position = key_match.end() if key_match else 0
    for target in targets:
        written = re.compile(rf"\[[ \t]*\[[ \t]*{re.escape(target)}[ \t]*\][ \t]*\]")
        found = written.search(source, position)
        if found:
            position = found.end()
            line = 2 + source[: found.start()].count("\n")
        else:
            line = _key_line(source, key)
        note.problems.append(
            Problem(
                note.path, line, "warning", "unquoted-property-link",
                f"{key}: [[{target}]] is read by YAML as a nested list, so kb finds no link "
                f"in it; quote each link: {key}: [{_yaml_quoted(f'[[{target}]]')}]",
            )
        )


def _yaml_quoted(text: str) -> str:
    """Return ``text`` as a double-quoted YAML scalar: JSON's string escapes are valid YAML."""
    return json.dumps(text, ensure_ascii=False)


# Code blocks --------------------------------------------------------------------------------


# Quote levels and indentation columns past which the fast path below leaves a note to the
# line loop, which owns every rule about deep nesting. They must stay at or below any nesting
# limit that the line loop checks.
_FAST_MAX_QUOTE_DEPTH = 8
_FAST_MAX_INDENT_COLUMNS = 64
# A line that may open or close a fence, start an indented code block, or nest deeply. Every
# line that the line loop below treats specially matches one of these alternatives.
_CODE_CANDIDATE = re.compile(
    r"^(?:(?P<fence>[ \t>]*(?:```|~~~))|(?P<indented>[ \t>]*?(?:\t| {4})[ \t>]*[^ \t\n])"
    r"|(?P<deep>(?:[ \t]*>){%d}))" % (_FAST_MAX_QUOTE_DEPTH + 1),
    re.MULTILINE,
)
_CODE_CANDIDATE_FINDER = _after_line_break(_CODE_CANDIDATE)
_QUOTE_LINE = re.compile(r"^[ \t]{0,3}>", re.MULTILINE)
_FENCE_CLOSE: dict[tuple[str, int], re.Pattern[str]] = {}


def _mask_code_blocks(note: Note, text: str, lines: _Lines) -> str:
    """Record fenced and indented code blocks and blank them out."""
    if _FAST_PATHS and "\r" not in text:
        masked = _mask_fenced_code_only(note, text, lines)
        if masked is not None:
            return masked
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
        note.verbatim.append((start, end))
        last = end
        indented.clear()

    too_deep_line = 0
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
                note.verbatim.append((open_start, end))
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

        if not too_deep_line and not is_blank and (
            quote.count(">") > MAX_QUOTE_DEPTH or indent_width > MAX_INDENT_COLUMNS
        ):
            too_deep_line = line

        if _LIST_ITEM.match(inner):
            in_list = True
        elif not is_blank and indent_width < 2 and previous_blank:
            in_list = False
        previous_blank = is_blank

    flush_indented()
    if too_deep_line:
        note.problems.append(
            Problem(
                note.path, too_deep_line, "warning", "too-deep-nesting",
                f"quotes, callouts or lists nest deeper than {MAX_QUOTE_DEPTH} levels or "
                f"{MAX_INDENT_COLUMNS} columns from this line on; the site shows the deeper "
                "lines at that depth, so flatten the nesting",
            )
        )
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
        note.verbatim.append((open_start, len(text)))
        last = len(text)
    parts.append(text[last:])
    return "".join(parts)


def _mask_fenced_code_only(note: Note, text: str, lines: _Lines) -> str | None:
    """Mask the code blocks of a note whose only code blocks are fences outside quotes.

    Visits only the lines that _CODE_CANDIDATE finds instead of every line, and returns None,
    having recorded nothing, when the note needs the line loop of _mask_code_blocks: an
    indented line that may start an indented code block (or nest too deeply), a quoted or
    indented fence, or a quote inside a fence. ``text`` must have no CR.
    """
    starts = lines.starts
    line_count = len(starts)
    blocks: list[CodeBlock] = []
    spans: list[tuple[int, int]] = []
    parts: list[str] = []
    last = 0
    after_fence = 0  # the line after the last closing fence
    position = note.body_start
    while True:
        candidate = _CODE_CANDIDATE.match(text, position)
        if candidate is None:
            line_break = _CODE_CANDIDATE_FINDER.search(text, position)
            if line_break is None:
                break
            candidate = _CODE_CANDIDATE.match(text, line_break.end())
        start = candidate.start()
        line = lines.line_of(start)
        end = starts[line] - 1 if line < line_count else len(text)
        position = end + 1
        if candidate.lastgroup == "deep":
            return None
        content = text[start:end]
        quote = _QUOTE_PREFIX.match(content).group()
        if quote.count(">") > _FAST_MAX_QUOTE_DEPTH:
            return None
        inner = content[len(quote):]
        expanded = inner.expandtabs(4)
        indent_width = len(expanded) - len(expanded.lstrip(" "))
        opening = _FENCE_OPEN.match(inner)
        if opening is not None and (quote or indent_width >= 4):
            return None  # a fence in a quote, or one that opens only inside a list item
        if candidate.lastgroup == "indented" or indent_width >= 4:
            # Harmless only when a non-blank line outside any fence precedes it: then it
            # continues a paragraph or list item and cannot start an indented code block.
            if indent_width > _FAST_MAX_INDENT_COLUMNS or line - 1 < note.body_line:
                return None
            if line == after_fence:
                return None
            previous = text[starts[line - 2] : start - 1]
            if not previous[len(_QUOTE_PREFIX.match(previous).group()) :].strip():
                return None
            continue
        if opening is None:
            continue
        info = opening.group("info").strip()
        fence = opening.group("fence")
        if fence[0] == "`" and "`" in info:
            continue
        lang = info.split()[0].lower() if info.split() else ""
        indent = len(opening.group("indent"))

        # The fence runs to the first line holding only a run of its character at least as
        # long as the opening one, or to the end of the note.
        key = (fence[0], len(fence))
        closing_pattern = _FENCE_CLOSE.get(key)
        if closing_pattern is None:
            closing_pattern = re.compile(
                r"^[^\S\n]*%s{%d,}[^\S\n]*$" % (re.escape(fence[0]), len(fence)), re.MULTILINE
            )
            _FENCE_CLOSE[key] = closing_pattern
        code_start = starts[line] if line < line_count else len(text)
        closing = closing_pattern.search(text, code_start) if line < line_count else None
        if closing is not None:
            close_line = lines.line_of(closing.start())
            close_end = closing.end()
            code_text = text[code_start : closing.start()]
            code_lines = code_text.split("\n")[:-1]
        else:
            close_line = line_count
            close_end = len(text)
            code_text = text[code_start:]
            code_lines = code_text.split("\n") if line < line_count else []
        if _QUOTE_LINE.search(text, code_start, close_end):
            return None
        if indent == 0:
            code = "\n".join(code_lines) + "\n" if code_lines else ""
        else:
            code = "".join(_strip_indent(code_line, indent) + "\n" for code_line in code_lines)
        blocks.append(
            CodeBlock(lang, info, note.path, line, line + 1, close_line, code, fenced=True)
        )
        parts.append(text[last:start])
        parts.append(blank(text[start:close_end]))
        spans.append((start, close_end))
        last = close_end
        after_fence = close_line + 1
        position = close_end + 1
        if closing is None:
            break

    note.code_blocks.extend(blocks)
    note.verbatim.extend(spans)
    if not parts:
        return text
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
    for match in _iter_line_matches(_HEADING, _HEADING_FINDER, masked, note.body_start):
        text = note.text[match.start("text") : match.end("text")].strip() if match.group("text") else ""
        note.headings.append(
            Heading(
                len(match.group("hashes")), text, note.path, lines.line_of(match.start()),
                match.start(), match.end(),
            )
        )

    for match in _iter_line_matches(_CALLOUT, _CALLOUT_FINDER, masked, note.body_start):
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
    append = parts.append
    links = note.links
    verbatim = note.verbatim
    line_of = lines.line_of
    last = 0
    dropped = 0
    first_dropped = 0
    for match in _INLINE.finditer(masked, note.body_start):
        group = match.lastgroup
        start, end = match.span()
        raw = match.group()
        link = None
        if group == "wikilink":
            inner = match.group("inner")
            # "[[ ]]" is text, like "[[]]": a wikilink needs something between the brackets.
            if inner.strip():
                if len(links) < MAX_LINKS_PER_NOTE:
                    link = _wikilink(
                        note, raw, inner, bool(match.group("bang")), line_of(start), start, end
                    )
                else:
                    dropped += 1
        elif group == "mdlink":
            link = _markdown_link(note, match, lines)
            if link is None and len(note.external_links) >= MAX_LINKS_PER_NOTE:
                dropped += 1
            elif link is None:
                url = match.group("dest").strip()
                if url.startswith("<") and url.endswith(">"):
                    url = url[1:-1]
                note.external_links.append(
                    ExternalLink(url, match.group("text"), note.path, line_of(start), start, end)
                )
            elif len(links) >= MAX_LINKS_PER_NOTE:
                link = None
                dropped += 1
        else:
            verbatim.append((start, end))  # a code span or math
        if link is not None:
            links.append(link)
        elif dropped == 1 and not first_dropped:
            first_dropped = line_of(start)
        append(masked[last:start])
        append(" " * (end - start) if "\n" not in raw else blank(raw))
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
            Block(
                match.group("id"), note.path, line, max(start_line, note.body_line),
                max(end_line, note.body_line), match.start(), match.end("id"),
            )
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
