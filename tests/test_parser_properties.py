"""Property-based tests of the parser: it never raises, never reads links inside code or math,
and every line number points at the text of what it reports.

The example count comes from the ``KB_HYPOTHESIS_EXAMPLES`` environment variable (default
2,000 per test); ``bench/fuzz_parser.py`` runs the same properties far longer.
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.parse import parse_note

EXAMPLES = int(os.environ.get("KB_HYPOTHESIS_EXAMPLES", "2000"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Pieces of Obsidian Markdown, valid and broken, glued together at random.
FRAGMENTS = [
    "[[Note]]", "[[Note|shown]]", "![[img.png|300]]", "[[Folder/Name#Head#Sub]]",
    "[[N#^block-id]]", "[[unclosed", "]]", "[[", "[x](Other%20Note.md)", "![a](b.png)",
    "[x](<A B.md>)", "#tag", "#1984", "#a/b", "\\#not", "^id", " ^blk", "`", "``", "```",
    "~~~", "$", "$$", "$x$", "$[[y]]$", "> ", "> [!note] T", "- ", "- [ ] ", "1. ", "    ",
    "\t", "\n", "\r\n", "\r", "\n\n", "---\n", "tags: [a]\n", "%%", "|", "\\|", "# ", "## H",
    "é", "学", "🚀", "\x00", "\ufeff", "word", " ", "(", ")", "<", ">", "&", '"', "'",
]

markdown_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40
).map("".join)


@SETTINGS
@given(markdown_text)
def test_parser_never_raises(text):
    note = parse_note(text, "note.md")

    for record in note.links + note.tags + note.headings + note.blocks + note.callouts:
        assert str(record).startswith("note.md:")


@SETTINGS
@given(markdown_text)
def test_link_line_points_at_link_text(text):
    note = parse_note(text, "note.md")
    lines = re.split(r"\r\n|\r|\n", text)

    for link in note.links:
        if link.syntax == "property":
            continue
        assert text[link.start : link.end] == link.raw
        first_line = re.split(r"\r\n|\r|\n", link.raw)[0]
        assert first_line in lines[link.line - 1], (link.line, link.raw)


CODE_WRAPPERS = [
    ("`", "`"),
    ("``", "``"),
    ("```\n", "\n```\n"),
    ("~~~python\n", "\n~~~\n"),
    ("$", "$"),
    ("$$", "$$"),
]

inner_text = st.lists(
    st.sampled_from(["[[Hidden]]", "![[Hidden.png]]", "#hiddentag", "[h](Hidden.md)", "x", " "]),
    min_size=1, max_size=6,
).map("".join)


@SETTINGS
@given(
    st.sampled_from(CODE_WRAPPERS),
    inner_text,
    st.sampled_from(["", "Before ", "Before\n\n"]),
    st.sampled_from(["", " after", "\n\nAfter [[Visible]] #seen"]),
)
def test_nothing_found_inside_code_or_math(wrapper, inner, before, after):
    opening, closing = wrapper
    if opening == "$" and (inner[0] == " " or inner[-1] == " "):
        inner = "x" + inner.strip() + "x"  # "$ x$" is not math, so keep the example meaningful
    if opening.endswith("\n") and before == "Before ":
        # A fence opens only at the start of a line; mid-line it is an ordinary backtick run.
        before = "Before\n"
    text = f"{before}{opening}{inner}{closing}{after}"

    note = parse_note(text, "note.md")

    assert all("Hidden" not in link.raw for link in note.links), text
    assert "hiddentag" not in note.tag_names, text
    if "[[Visible]]" in after:
        assert [link.target_text for link in note.links] == ["Visible"]
        assert "seen" in note.tag_names
