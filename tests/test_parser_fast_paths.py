"""The parser's fast paths give exactly the records of its general code.

``kb.parse._FAST_PATHS`` switches off the Python reader for simple front matter and the
fence-only code block masking; with it off, every note goes through libyaml and the line loop.
The rewritten scanning patterns are compared with the patterns they replaced, and the
resolver's cache with uncached calls to ``Vault.resolve``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kb.parse as parse
from kb.parse import mask_code, parse_note
from kb.vault import Vault

REPOSITORY = Path(__file__).resolve().parent.parent
ML_NOTES = REPOSITORY.parent / "shared" / "vaults" / "ml-notes"
sys.path.insert(0, str(REPOSITORY / "bench"))
from synthetic_vault import write_vault  # noqa: E402

EXAMPLES = int(os.environ.get("KB_HYPOTHESIS_EXAMPLES", "2000"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# The scanning patterns as they were before their faster rewrites.
REFERENCE_TAG = re.compile(
    r"(?:(?<=\s)|^)#(?P<tag>"
    r"[\w\-/\u00a9\u00ae\u200d\u2070-\u2bff\ufe0f\U0001F000-\U0001FAFF]+)",
    re.MULTILINE,
)
REFERENCE_BLOCK_ID = re.compile(
    r"(?:^|(?<=[ \t]))\^(?P<id>[A-Za-z0-9-]+)[ \t]*$", re.MULTILINE
)
REFERENCE_INLINE = re.compile(
    parse._INLINE.pattern.replace(
        r"(?:[^`\n]++|`+|\n(?![ \t]*(?:\n|\r|$)))+?", r"(?:[^\n]|\n(?![ \t]*(?:\n|\r|$)))+?"
    )
    .replace(r"(?:[^\[\]\n\r]++|\[(?!\[)|\](?!\]))+?", r"(?:[^\[\]\n\r]|\[(?!\[)|\](?!\]))+?")
    .replace(r"(?:[^$\n\r\\\[]++|\\.|", r"(?:[^$\n\r\\\[]|\\.|"),
    re.VERBOSE,
)


def records(note) -> list:
    """Every record of a parsed note, as plain data that compares field by field."""
    fields = [
        note.frontmatter, note.links, note.tags, note.headings, note.blocks, note.callouts,
        note.code_blocks, note.problems, note.aliases, note.body_start, note.body_line,
    ]
    return [
        [dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item for item in value]
        if isinstance(value, list) else value
        for value in fields
    ]


def parse_both(text: str, monkeypatch) -> tuple[list, list]:
    """Parse ``text`` with the fast paths and without them; return both records and masks."""
    fast = records(parse_note(text, "note.md")), mask_code(text)
    monkeypatch.setattr(parse, "_FAST_PATHS", False)
    general = records(parse_note(text, "note.md")), mask_code(text)
    monkeypatch.setattr(parse, "_FAST_PATHS", True)
    return fast, general


def assert_same_records(text: str, monkeypatch) -> None:
    fast, general = parse_both(text, monkeypatch)
    assert fast[0] == general[0], text
    assert fast[1] == general[1], text
    # repr distinguishes True from 1, which == does not.
    assert repr(fast[0]) == repr(general[0]), text


def vault_texts(root: Path) -> list[str]:
    return [path.read_text(encoding="utf-8", errors="replace") for path in sorted(root.rglob("*.md"))]


@pytest.fixture(scope="module")
def synthetic_vault(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_vault(root, 300, seed=3)
    return root


@pytest.fixture(scope="module")
def ml_notes(tmp_path_factory) -> Path:
    if not ML_NOTES.is_dir():
        pytest.skip(f"sample vault not found at {ML_NOTES}")
    copy = tmp_path_factory.mktemp("vault") / "ml-notes"
    shutil.copytree(ML_NOTES, copy, symlinks=True)
    return copy


def test_fast_paths_on_ml_notes(ml_notes, monkeypatch):
    texts = vault_texts(ml_notes)
    assert texts
    for text in texts:
        assert_same_records(text, monkeypatch)


def test_fast_paths_on_synthetic_vault(synthetic_vault, monkeypatch):
    for text in vault_texts(synthetic_vault):
        assert_same_records(text, monkeypatch)


def test_fast_paths_on_project_docs(monkeypatch):
    for text in vault_texts(REPOSITORY / "docs"):
        assert_same_records(text, monkeypatch)


def test_fast_paths_taken_on_synthetic_notes(synthetic_vault):
    """The synthetic notes are the common case the fast paths exist for."""
    for text in vault_texts(synthetic_vault)[:50]:
        source = text.split("---\n")[1]
        assert parse._load_simple_yaml(source) is not None
        note = parse.Note(path="note.md", text=text)
        lines = parse._Lines(text)
        masked = parse._parse_frontmatter(note, lines)
        assert parse._mask_fenced_code_only(note, masked, lines) is not None


TRICKY_FRONTMATTER = [
    "", "\n", "   \n", "a: b", "a: b\n", "a:\n", "a:   \n", "a: b  \n", "a:b\n", "a : b\n",
    "tags: [ml, dl]\n", "tags: []\n", "tags: [ ]\n", "tags: [ml,]\n", "tags: [ml, , dl]\n",
    "tags: [a b, 'c d', \"e f\"]\n", "tags: ['it''s', '''']\n", "tags: ['a, b', c]\n",
    "tags: [[a]]\n", "tags: [a, [b]]\n", "tags: {a: 1}\n", "tags: [a:b]\n", "tags: [a: b]\n",
    "tags: [yes, No, null, ~, 12, 012, 0, 1.5, -1, +1, 0x1f]\n",
    "requires: ['[[Attention]]', '[[Softmax|soft]]']\n", "requires: \"[[A]]\"\n",
    "requires: '[[A]]'\n", "requires: [[A]]\n", "requires: [\"[[A]]\", '[[B]]']\n",
    "aliases: [one]\naliases: [two]\n", "a: 1\nA: 2\n", "yes: 1\n", "on: push\n", "Null: x\n",
    "a: yes\nb: Off\nc: TRUE\nd: null\ne: NULL\nf: ~\n", "a: y\nb: n\n",
    "a: 2024-01-01\n", "a: 2024-01-01 10:00:00\n", "a: 1:20\n", "a: 1_000\n", "a: .inf\n",
    "a: .NaN\n", "a: 1e3\n", "a: 0b101\n", "a: 0o17\n", "a: 00\n", "a: 007\n", "a: 10\n",
    "a: -\n", "a: - b\n", "a: ? b\n", "a: !str b\n", "a: &x b\nc: *x\n", "a: |\n  text\n",
    "a: >\n  folded\n", "a: b # comment\n", "# comment\na: b\n", "a: C#\n", "a: x#y\n",
    "a: b: c\n", "a: b:c\n", "a: b:\n", "a: b::c\n", "a: http://example.com/x\n",
    "a: b\n  c\n", "a: b\n c: d\n", "a:\n  b: c\n", "a:\n- b\n- c\n", "a:\n  - b\n  - c\n",
    "a:\n  - b\n - c\n", "a:\n  - b\n    - c\n", "a:\n- b\n  - c\n", "a:\n\n  - b\n\n  - c\n",
    "a:\n  - 'b'\n  - \"c\"\n  - d e\n", "a:\n  -\n", "a:\n  - \n", "a:\n  - - b\n",
    "a:\n  - [b]\n", "a:\n  - b: c\n", "a:\n  - yes\n  - 3\n", "a:\n  -b\n", "- a\n", "a\n",
    "a: b\n- c\n", "a:\n  - b\nc: d\n", "a:\n  - b\n  c: d\n", "a: 'unclosed\n",
    "a: 'two\n  lines'\n", "a: \"esc\\n\"\n", "a: \"q\\\"q\"\n", "a: ''\n", "a: \"\"\n",
    "a: 'x' y\n", "a: 'x'  \n", "a:\tb\n", "\ta: b\n", "a: b\t\n", "a: é ü\n", "é: ü\n",
    "a: 学习\n", "a: 🚀 rocket\n", "a: x\u00a0y\n", "a: x\u200dy\n", "a: x\ufeffy\n",
    "a: x\x85y\n", "a: x\u2028y\n", "a: x\x07y\n", "a: ½\n", "a: Ⅻ\n", "½: a\n",
    "_a: b\n", "1a: b\n", "a.b: c\n", "a-b: c\n", "a b: c\n", "a  b: c\n", "a b : c\n",
    "'a': b\n", "\"a\": b\n", "a: [b\n", "a: b]\n", "a: [b, c\n  d]\n", "a: {}\n", "a: []x\n",
    "a: %x\n", "a: @x\n", "a: `x\n", "a: x`y\n", "a: x, y\n", "a: it's\n", "a: x [y]\n",
    "a: x {y}\n", "a: x - y\n", "a: x | y\n", "a: <<\n", "<<: {a: 1}\n", "a: =\n",
    "% directive\na: b\n", "--- x\n", "... x\n", "a: b\n...\n",
    "a: [" + ", ".join(["x"] * 10_001) + "]\n",
]


@pytest.mark.parametrize("source", TRICKY_FRONTMATTER)
def test_simple_yaml_matches_libyaml(source):
    simple = parse._load_simple_yaml(source)
    if simple is None:
        return
    expected = yaml.load(source, Loader=parse._SafeUniqueLoader)
    expected = {} if expected is None else expected
    assert repr(simple) == repr(expected)


@pytest.mark.parametrize("source", TRICKY_FRONTMATTER)
def test_tricky_frontmatter_same_records(source, monkeypatch):
    for line_break in ("\n", "\r\n", "\r"):
        text = "---\n" + source + "---\n# Title\n\nBody [[Link]] #tag\n"
        assert_same_records(text.replace("\n", line_break), monkeypatch)


def test_simple_yaml_takes_common_front_matter():
    source = (
        "title: Attention is all you need\n"
        "tags: [ml, 'nlp/transformers']\n"
        "aliases:\n  - attention\n  - self-attention\n"
        "requires: ['[[Softmax]]', \"[[Dot product]]\"]\n"
        "year: 2017\ndraft: false\nsummary:\n"
    )
    assert parse._load_simple_yaml(source) == {
        "title": "Attention is all you need",
        "tags": ["ml", "nlp/transformers"],
        "aliases": ["attention", "self-attention"],
        "requires": ["[[Softmax]]", "[[Dot product]]"],
        "year": 2017,
        "draft": False,
        "summary": None,
    }


TRICKY_BODIES = [
    "```python\ncode\n```\n",
    "```python\ncode\n",
    "```",
    "text\n```\n",
    "~~~~\n~~~\n~~~~~\nafter [[A]]\n",
    "``` with `tick`\nnot code [[A]]\n```\n",
    "```\n    indented inside\n\tand tab\n```\n\n    indented after a fence\n",
    "para\n```\ncode\n```\n    after the fence [[A]]\n",
    "para\n\n```\ncode\n```\n    right after the fence [[A]]\n",
    "para\n\n    indented code [[A]]\n",
    "para\n    continuation [[A]]\n",
    "- item\n    nested [[A]]\n\n    more of the item [[B]]\n",
    "- item\n\n      ```\n      fenced in a list [[A]]\n      ```\n",
    "    ```\n    not a fence\n    ```\n",
    "> ```\n> quoted fence [[A]]\n> ```\n",
    "```\n> quoted line inside [[A]]\n```\n",
    "```\ncode\n> ```\nstill code?\n```\n",
    "   ```\n   indented fence [[A]]\n   ```\n",
    "  ```js\n  two spaces\n    four spaces\n  ```\n",
    "```\ncode\n \u00a0```\nafter [[A]]\n",
    "```\ncode\n```  \x0c\nafter [[A]]\n",
    ">" * 40 + " deep\n",
    "text\n" + " " * 140 + "deep indent\n",
    "```\n" + " " * 140 + "deep inside a fence\n```\n",
    "> " * 9 + "quoted nine levels\n",
    "text\n" + " " * 70 + "indented seventy columns\n",
    "> quote\n>     indented in a quote [[A]]\n",
    "# Head ^id\n\n- a ^b1\n- b\n\n^own\n",
    "#tag #1984 x#no (#no) \u3000#yes\n#start\n",
    "a\r\n```\r\ncode [[A]]\r\n```\r\n",
    "text ^id\n\n    ^code\n",
    "\n\n\n```\n```\n\n\n",
]


@pytest.mark.parametrize("body", TRICKY_BODIES)
def test_tricky_code_blocks_same_records(body, monkeypatch):
    assert_same_records(body, monkeypatch)
    assert_same_records("---\ntags: [a]\n---\n" + body, monkeypatch)
    assert_same_records("Paragraph\n\n" + body, monkeypatch)


FRAGMENTS = [
    "[[Note]]", "![[img.png|300]]", "[[N#^block-id]]", "[[", "]]", "[x](Other%20Note.md)",
    "#tag", "#1984", "^id", " ^blk", "`", "``", "```", "```py", "~~~", "~~~~", "$", "$$",
    "$x$", "$[[y]]$", "> ", ">", "> [!note] T", "- ", "1. ", "  ", "    ", "\t", "\n", "\n\n",
    "\r\n", "\r", "---\n", "tags: [a]\n", "a:\n  - b\n", "x: 'y'\n", "# ", "## H", "é", "🚀",
    "\u00a0", "\x0c", "word", " ",
]
markdown_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=40
).map("".join)


@SETTINGS
@given(markdown_text)
def test_random_notes_same_records(text):
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_same_records(text, monkeypatch)
        assert_same_records("---\n" + text, monkeypatch)


def reference_spans(pattern: re.Pattern[str], text: str) -> list[tuple]:
    return [(match.lastgroup, match.span(), match.groupdict()) for match in pattern.finditer(text)]


def assert_same_scans(text: str) -> None:
    assert reference_spans(parse._TAG, text) == reference_spans(REFERENCE_TAG, text)
    assert reference_spans(parse._BLOCK_ID, text) == reference_spans(REFERENCE_BLOCK_ID, text)
    assert reference_spans(parse._INLINE, text) == reference_spans(REFERENCE_INLINE, text)
    for pattern in (parse._HEADING, parse._CALLOUT):
        finder = parse._after_line_break(pattern)
        assert [match.span() for match in parse._iter_line_matches(pattern, finder, text, 0)] == [
            match.span() for match in pattern.finditer(text)
        ]


def test_rewritten_patterns_match_as_before(synthetic_vault, ml_notes):
    for root in (synthetic_vault, ml_notes, REPOSITORY / "docs"):
        for text in vault_texts(root):
            assert_same_scans(text.replace("\r", "\n"))


INLINE_FRAGMENTS = [
    "`", "``", "```", "$", "$$", "\\$", "\\", "[", "]", "[[", "]]", "!", "(", ")", "<", ">",
    "#", "^", "x", " ", "\t", "\n", "\n\n", "a-b", "\u3000", "🚀", "$5", "[[a]]", "[b](c)",
]


@SETTINGS
@given(st.lists(st.sampled_from(INLINE_FRAGMENTS), max_size=30).map("".join))
def test_rewritten_patterns_on_random_text(text):
    assert_same_scans(text)


def test_resolution_cache_matches_resolve(synthetic_vault, ml_notes):
    for root in (synthetic_vault, ml_notes):
        vault = Vault.load(root)
        for link in vault.links:
            expected = vault.resolve(link.target_text, link.source, link.syntax)
            assert link.target == expected.target
            assert link.ambiguous == expected.ambiguous
            assert link.candidates == list(expected.candidates)
            assert link.would_create == expected.would_create
