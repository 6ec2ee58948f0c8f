"""Inline HTML for short lines of note text: questions on the Questions page and backlink
context lines.

These lines appear inside kb's own HTML, outside Python-Markdown, so kb renders their
emphasis, code spans and math itself.
"""

from __future__ import annotations

import html
import re

from kb.parse import INLINE_PATTERN

__all__ = ["inline_html", "plain_html"]

# Characters that kb's parser reads as syntax (tags, links, math, comments, block ids, code)
# become character references in the HTML, which the parser and browsers read as text.
_PARSER_SYNTAX = str.maketrans({character: f"&#{ord(character)};" for character in "#[]$%^`\\"})
_INLINE_HTML = [
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"<strong>\2</strong>"),
    (re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?!\*)"), r"<em>\1</em>"),
    (re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"), r"<em>\1</em>"),
    (re.compile(r"==(?=\S)(.+?)(?<=\S)=="), r"<mark>\1</mark>"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"<del>\1</del>"),
]


def plain_html(text: str) -> str:
    """Escape ``text`` for HTML, with the parser's syntax characters as character references."""
    return html.escape(text, quote=False).translate(_PARSER_SYNTAX)


def _text_html(text: str) -> str:
    text = html.escape(text, quote=False)
    for pattern, replacement in _INLINE_HTML:
        text = pattern.sub(replacement, text)
    return text.translate(_PARSER_SYNTAX)


def inline_html(text: str) -> str:
    """Render one line of note text as inline HTML: emphasis, highlights, code spans and math.

    The parser's own inline pattern finds code spans and math, so they match what the note
    shows. The text around them gets the common emphasis markers; links, tags and other
    Markdown stay as written.
    """
    parts: list[str] = []
    last = 0
    for match in INLINE_PATTERN.finditer(text):
        kind = match.lastgroup
        if kind not in ("code", "imath", "dmath"):
            continue
        parts.append(_text_html(text[last : match.start()]))
        raw = match.group()
        if kind == "code":
            width = len(match.group("ticks"))
            parts.append(f"<code>{plain_html(raw[width:-width].strip())}</code>")
        else:
            width = 2 if kind == "dmath" else 1
            tex = plain_html(raw[width:-width].strip())
            parts.append(f'<span class="arithmatex">&#92;({tex}&#92;)</span>')
        last = match.end()
    parts.append(_text_html(text[last:]))
    return "".join(parts)
