"""The parse records where code and math sit, so the question rule and the site blank them
without scanning a note again. These tests compare that record with a direct scan."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb import parse
from kb.model import Note
from kb.parse import blank, blank_spans, masked_text, parse_note

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def direct_mask(text: str) -> str:
    """Blank front matter, code blocks, code spans and math with one more inline scan."""
    note = Note(path="", text=text)
    lines = parse._Lines(text)
    masked = parse._parse_frontmatter(note, lines)
    masked = parse._mask_code_blocks(note, masked, lines)
    parts, last = [], 0
    for match in parse._INLINE.finditer(masked):
        if match.lastgroup in ("code", "dmath", "imath"):
            parts += [masked[last:match.start()], blank(match.group())]
            last = match.end()
    return "".join(parts) + masked[last:]


def corpus() -> list[tuple[str, str]]:
    texts = []
    for folder in [ROOT / "docs", SHARED / "obsidian" / "cases", SHARED / "vaults" / "ml-notes"]:
        for path in sorted(folder.rglob("*.md")):
            texts.append((str(path.relative_to(folder.parent)), path.read_text("utf-8", "replace")))
    return texts


HAND_WRITTEN = [
    ("crlf code span across a line", "a `code\r\nspan` [[x]]\r\n"),
    ("crlf fence", "---\r\ntags: [a]\r\n---\r\n```\r\n[[y]]\r\n```\r\ntext $m$\r\n"),
    ("comment around code", "%% a `b` c %% and `d`\n"),
    ("unclosed fence", "text\n```python\n[[z]]\n"),
    ("indented code", "para\n\n    code [[q]]\n\nafter\n"),
    ("display math over lines", "$$\na [[b]]\n$$ and $x$?\n"),
    ("tabs in code", "`a\tb` and\u00a0`c`\n"),
]


@pytest.mark.parametrize(
    "name, text", [pytest.param(*case, id=case[0]) for case in HAND_WRITTEN + corpus()]
)
def test_masked_text_matches_a_direct_scan(name, text):
    note = parse_note(text, "note.md")
    assert masked_text(note) == direct_mask(text)


def test_overlapping_spans_keep_the_length():
    assert blank_spans("ab `c` de", [(0, 7), (3, 6)]) == "       de"
    assert blank_spans("ab\ncd", [(1, 4)]) == "a \n d"
