"""Table-driven tests of :func:`kb.parse.parse_note`, one table per Obsidian syntax feature."""

from __future__ import annotations

import unicodedata

import pytest
import yaml

from kb.parse import mask_code, parse_note, split_wikilink
from kb.vault import Vault


def links_of(text: str) -> list[tuple]:
    """Return (raw, target_text, heading, block, display, size, fragment, kind) per link."""
    note = parse_note(text, "N.md")
    return [
        (link.raw, link.target_text, link.heading, link.block, link.display, link.size,
         link.fragment, link.kind)
        for link in note.links
    ]


def raws(text: str) -> list[str]:
    return [link.raw for link in parse_note(text, "N.md").links]


def tags(text: str) -> list[str]:
    return [tag.name for tag in parse_note(text, "N.md").tags]


# Wikilinks, embeds, sizes, headings, blocks ---------------------------------------------------

WIKILINKS = [
    ("[[Name]]", [("[[Name]]", "Name", None, None, None, None, None, "link")]),
    ("[[ Name ]]", [("[[ Name ]]", "Name", None, None, None, None, None, "link")]),
    ("[[Name.md]]", [("[[Name.md]]", "Name.md", None, None, None, None, None, "link")]),
    ("[[Name|Shown]]", [("[[Name|Shown]]", "Name", None, None, "Shown", None, None, "link")]),
    ("[[Name |x]]", [("[[Name |x]]", "Name", None, None, "x", None, None, "link")]),
    ("[[A|B|C]]", [("[[A|B|C]]", "A", None, None, "B|C", None, None, "link")]),
    ("[[N#H2#H3]]", [("[[N#H2#H3]]", "N", ["H2", "H3"], None, None, None, None, "link")]),
    ("[[#Own]]", [("[[#Own]]", "", ["Own"], None, None, None, None, "link")]),
    ("[[N#^blk-1]]", [("[[N#^blk-1]]", "N", None, "blk-1", None, None, None, "link")]),
    ("[[#^b]]", [("[[#^b]]", "", None, "b", None, None, None, "link")]),
    ("[[N#]]", [("[[N#]]", "N", None, None, None, None, None, "link")]),
    ("![[Note]]", [("![[Note]]", "Note", None, None, None, None, None, "embed")]),
    ("![[N#^id]]", [("![[N#^id]]", "N", None, "id", None, None, None, "embed")]),
    ("![[img.png|300]]", [("![[img.png|300]]", "img.png", None, None, None, "300", None, "embed")]),
    ("![[img.png|640x480]]",
     [("![[img.png|640x480]]", "img.png", None, None, None, "640x480", None, "embed")]),
    # A number after a note embed is display text, not a size.
    ("![[Note|300]]", [("![[Note|300]]", "Note", None, None, "300", None, None, "embed")]),
    ("![[doc.pdf#page=3]]",
     [("![[doc.pdf#page=3]]", "doc.pdf", None, None, None, None, "page=3", "embed")]),
    ("[[doc.pdf#height=400]]",
     [("[[doc.pdf#height=400]]", "doc.pdf", None, None, None, None, "height=400", "link")]),
    # Escaped pipes as written in table cells.
    ("![[img.png\\|200]]",
     [("![[img.png\\|200]]", "img.png", None, None, None, "200", None, "embed")]),
    ("[[a\\|b]]", [("[[a\\|b]]", "a", None, None, "b", None, None, "link")]),
    # "$" inside a wikilink does not start math.
    ("[[Cost $5]]", [("[[Cost $5]]", "Cost $5", None, None, None, None, None, "link")]),
    ("[[Price $10|ten $]] and $x$",
     [("[[Price $10|ten $]]", "Price $10", None, None, "ten $", None, None, "link")]),
    ("[[A $x$ B]]", [("[[A $x$ B]]", "A $x$ B", None, None, None, None, None, "link")]),
]


@pytest.mark.parametrize("text, expected", WIKILINKS, ids=[case[0] for case in WIKILINKS])
def test_wikilink_fields(text, expected):
    assert links_of(text) == expected


NOT_WIKILINKS = [
    "[[]]",
    "[[ ]]",
    "[[\t]]",
    "[[unclosed",
    "[[split\n]]",
    "[[a\r\nb]]",
    "`[[in code]]`",
    "$[[y_i = k]]$",
]


@pytest.mark.parametrize("text", NOT_WIKILINKS)
def test_wikilink_absent(text):
    assert raws(text) == []


# An empty target with display text links to the note that contains it, as [[#Heading]] does.
# Obsidian's help does not cover this form, and no report of what Obsidian itself does was
# found, so kb follows the two exporters that handle it:
# - obsidian-export (zoni/obsidian-export at 0318c3f): OBSIDIAN_NOTE_LINK_RE in
#   src/references.rs makes the file part optional and an empty one None, and
#   make_link_to_file in src/lib.rs then links to context.current_file().
# - Quartz (jackyzha0/quartz at 4691369): wikilinkRegex in
#   quartz/plugins/transformers/ofm.ts makes the file part optional, and the link it builds
#   has the URL fp + anchor, the empty string, which browsers resolve to the current page.
# Only [[]] and [[ ]], with nothing but spaces inside, stay text (see NOT_WIKILINKS).
def test_wikilink_empty_target_links_to_itself(tmp_path):
    (tmp_path / "A.md").write_text("See [[|only display]] and [[ |x]].\n", encoding="utf-8")
    vault = Vault.load(tmp_path)
    got = [(link.raw, link.kind, link.target, link.self_link, link.display)
           for link in vault.notes["A.md"].links]
    assert got == [
        ("[[|only display]]", "link", "A.md", True, "only display"),
        ("[[ |x]]", "link", "A.md", True, "x"),
    ]


def test_wikilinks_several_on_line():
    assert raws("[[A]] [[B|b]] ![[C]] [[D#h]]") == ["[[A]]", "[[B|b]]", "![[C]]", "[[D#h]]"]


def test_wikilink_offsets_match_raw():
    text = "intro\n  see [[Target|x]] and ![[img.png|20]]"
    for link in parse_note(text, "N.md").links:
        assert text[link.start:link.end] == link.raw


@pytest.mark.parametrize(
    "inner, expected",
    [
        ("A", ("A", None, None)),
        ("A#H", ("A", "H", None)),
        ("A#H|d", ("A", "H", "d")),
        ("A\\|d", ("A", None, "d")),
        ("#^b", ("", "^b", None)),
        ("A|b|c", ("A", None, "b|c")),
    ],
)
def test_split_wikilink(inner, expected):
    assert split_wikilink(inner) == expected


# Markdown links -----------------------------------------------------------------------------

MARKDOWN_LINKS = [
    ("[x](Other%20Note.md)", [("[x](Other%20Note.md)", "Other Note.md", None, None, "x", None, None, "link")]),
    ("[x](Other%20Note)", [("[x](Other%20Note)", "Other Note", None, None, "x", None, None, "link")]),
    ("[y](<Other Note.md>)", [("[y](<Other Note.md>)", "Other Note.md", None, None, "y", None, None, "link")]),
    ("[z](./sub/A.md#Head)", [("[z](./sub/A.md#Head)", "./sub/A.md", ["Head"], None, "z", None, None, "link")]),
    ("[w](../B.md)", [("[w](../B.md)", "../B.md", None, None, "w", None, None, "link")]),
    ("[h](N.md#My%20Part)", [("[h](N.md#My%20Part)", "N.md", ["My Part"], None, "h", None, None, "link")]),
    ("[b](N.md#^blk)", [("[b](N.md#^blk)", "N.md", None, "blk", "b", None, None, "link")]),
    ('[q](Note.md "title")', [('[q](Note.md "title")', "Note.md", None, None, "q", None, None, "link")]),
    ("![i](img/p.png)", [("![i](img/p.png)", "img/p.png", None, None, "i", None, None, "embed")]),
    ("[p](doc.pdf#page=2)", [("[p](doc.pdf#page=2)", "doc.pdf", None, None, "p", None, "page=2", "link")]),
]


@pytest.mark.parametrize("text, expected", MARKDOWN_LINKS, ids=[case[0] for case in MARKDOWN_LINKS])
def test_markdown_link_fields(text, expected):
    assert links_of(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "[u](https://example.com/x.md)",
        "[m](mailto:a@example.com)",
        "[o](obsidian://open?vault=x)",
        "[s](//example.com/a)",
        "[e]()",
        "`[c](Code.md)`",
    ],
)
def test_markdown_link_external_or_absent(text):
    assert raws(text) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[u](https://example.com/x.md)", ("https://example.com/x.md", "u", 0, 29)),
        ("See [the paper](<https://arxiv.org/abs/1>).", ("https://arxiv.org/abs/1", "the paper", 4, 42)),
        ("[e]()", ("", "e", 0, 5)),
    ],
)
def test_external_link_records(text, expected):
    note = parse_note(text, "N.md")
    [external] = note.external_links
    assert (external.url, external.display, external.start, external.end) == expected
    assert note.links == []


def test_markdown_link_syntax_field():
    note = parse_note("[a](A.md) [[B]]", "N.md")
    assert [link.syntax for link in note.links] == ["markdown", "wikilink"]


# Property links -----------------------------------------------------------------------------


def test_property_links_record_key_and_line():
    text = '---\ntitle: x\nrequires:\n  - "[[Attention]]"\n  - "[[Softmax|s]]"\nup: "[[Index]]"\n---\nBody [[B]]'
    note = parse_note(text, "N.md")
    got = [(link.raw, link.syntax, link.property, link.line) for link in note.links]
    assert got == [
        ("[[Attention]]", "property", "requires", 4),
        ("[[Softmax|s]]", "property", "requires", 5),
        ("[[Index]]", "property", "up", 6),
        ("[[B]]", "wikilink", None, 8),
    ]


def test_property_link_repeated_text_lines():
    text = '---\na: "[[X]]"\nb: "[[X]]"\n---\n'
    assert [link.line for link in parse_note(text, "N.md").links] == [2, 3]


def test_property_empty_wikilink_ignored():
    assert raws('---\nup: "[[ ]]"\n---\n') == []


# YAML reads an unquoted [[A]] as the nested list [["A"]], so the note would silently get no link.
UNQUOTED_PROPERTY_LINKS = [
    ("flow", "requires: [[A]]\n",
     [(2, 'requires: [[A]] is read by YAML as a nested list, so kb finds no link in it; '
          'quote each link: requires: ["[[A]]"]')]),
    ("block item", "requires:\n  - \"[[A]]\"\n  - [[B|b]]\n",
     [(4, 'requires: [[B|b]] is read by YAML as a nested list, so kb finds no link in it; '
          'quote each link: requires: ["[[B|b]]"]')]),
    ("other property", "title: x\nup: [[ Index ]]\n",
     [(3, 'up: [[Index]] is read by YAML as a nested list, so kb finds no link in it; '
          'quote each link: up: ["[[Index]]"]')]),
    ("two properties", "up: [[A]]\nnext: [[B]]\n",
     [(2, 'up: [[A]] is read by YAML as a nested list, so kb finds no link in it; '
          'quote each link: up: ["[[A]]"]'),
      (3, 'next: [[B]] is read by YAML as a nested list, so kb finds no link in it; '
          'quote each link: next: ["[[B]]"]')]),
    ("quotes in the name", 'requires:\n  - [[D "quote" & <tag>]]\n',
     [(3, 'requires: [[D "quote" & <tag>]] is read by YAML as a nested list, so kb finds no link '
          'in it; quote each link: requires: ["[[D \\"quote\\" & <tag>]]"]')]),
    ("quoted", 'requires: ["[[A]]"]\n', []),
    ("list of two words", "pair: [[a, b]]\n", []),
    ("matrix", "grid: [[1], [2]]\n", []),
]


@pytest.mark.parametrize("frontmatter, expected", [case[1:] for case in UNQUOTED_PROPERTY_LINKS],
                         ids=[case[0] for case in UNQUOTED_PROPERTY_LINKS])
def test_property_unquoted_wikilink_warned(frontmatter, expected):
    note = parse_note(f"---\n{frontmatter}---\nBody\n", "N.md")
    got = [(problem.line, problem.message) for problem in note.problems
           if problem.code == "unquoted-property-link"]
    assert got == expected
    assert all(problem.severity == "warning" for problem in note.problems)
    for _line, message in got:
        # The suggested fix must itself be valid YAML that gives the link as a string.
        _key, suggestion = message.rsplit("quote each link: ", 1)[1].split(": ", 1)
        [link] = yaml.safe_load(suggestion)
        assert link.startswith("[[")
        assert link.endswith("]]")


# Tags ---------------------------------------------------------------------------------------

TAGS = [
    ("#kebab-case #snake_case #学习 #2024-review", ["kebab-case", "snake_case", "学习", "2024-review"]),
    ("#2024", []),
    ("#1984 #y1984 #123a", ["y1984", "123a"]),
    ("#a/b/c", ["a/b/c"]),
    ("#a/b/", ["a/b"]),
    ("#Tag #TAG #tag", ["tag", "tag", "tag"]),
    ("#ü #日本語 #🎉", ["ü", "日本語", "🎉"]),
    ("#❤️love", ["❤️love"]),
    ("#tag. #tag, #tag!", ["tag", "tag", "tag"]),
    # General punctuation ends a tag.
    ("#tag… #a—b #x“y”", ["tag", "a", "x"]),
    # Not tags: headings, "#" inside a word or URL, escaped, inside code, a heading link.
    ("# Heading", []),
    ("###### h6", []),
    ("word#inside", []),
    ("see page.html#part", []),
    ("\\#escaped", []),
    ("`#code`", []),
    ("```\n#fenced\n```", []),
    ("[[Note#Part]]", []),
    ("[x](N.md#part)", []),
    ("$#math$", []),
    ("(#paren)", []),
    ("line ^block-id", []),
]


@pytest.mark.parametrize("text, expected", TAGS, ids=[case[0] for case in TAGS])
def test_inline_tags(text, expected):
    assert tags(text) == expected


def test_tag_keeps_written_casing():
    note = parse_note("#MixedCase", "N.md")
    assert note.tags[0].written == "MixedCase"
    assert note.tags[0].name == "mixedcase"


@pytest.mark.parametrize(
    "frontmatter, expected",
    [
        ("tags: [ml, a/b]", ["ml", "a/b"]),
        ("tags:\n  - ml\n  - '#Hash'", ["ml", "hash"]),
        ("tags: ml, attention", ["ml", "attention"]),
        ("tags: ml attention", ["ml", "attention"]),
        ("tag: old", []),
        ("tags:", []),
    ],
)
def test_frontmatter_tags(frontmatter, expected):
    assert tags(f"---\n{frontmatter}\n---\n") == expected


# Block ids and callouts -----------------------------------------------------------------------

BLOCKS = [
    ("Para line ^abc", [("abc", 1, 1, 1)]),
    ("first\nsecond ^p2", [("p2", 2, 1, 2)]),
    ("- one\n- two ^li", [("li", 2, 2, 2)]),
    ("- a\n- b\n\n^list", [("list", 4, 1, 2)]),
    ("> quote\n\n^q", [("q", 3, 1, 1)]),
    ("`^code`", []),
    ("a^notid", []),
    ("x ^under_score", []),
]


@pytest.mark.parametrize("text, expected", BLOCKS, ids=[case[0] for case in BLOCKS])
def test_block_ids(text, expected):
    note = parse_note(text, "N.md")
    assert [(b.id, b.line, b.start_line, b.end_line) for b in note.blocks] == expected
    for block in note.blocks:
        assert text[block.start : block.end] == "^" + block.id


CALLOUTS = [
    ("> [!note]\n> body", [("note", "Note", None, 1, 1)]),
    ("> [!WARNING]- Careful\n> body", [("warning", "Careful", "-", 1, 1)]),
    ("> [!tip]+ Open\n> body", [("tip", "Open", "+", 1, 1)]),
    ("> [!note] Outer\n> > [!tip] Inner\n> > x", [("note", "Outer", None, 1, 1), ("tip", "Inner", None, 2, 2)]),
    ("> plain quote\n> [!note] not first line", []),
    ("[!note] no quote", []),
]


@pytest.mark.parametrize("text, expected", CALLOUTS, ids=[case[0] for case in CALLOUTS])
def test_callouts(text, expected):
    note = parse_note(text, "N.md")
    got = [(c.type, c.title, c.fold, c.depth, c.line) for c in note.callouts]
    assert got == expected


def test_callout_marker_not_link():
    note = parse_note("> [!note] See [[A]] #t\n> ![[B]]", "N.md")
    assert [link.raw for link in note.links] == ["[[A]]", "![[B]]"]
    assert note.tag_names == ["t"]


# Code: spans, fences, indented blocks ---------------------------------------------------------

CODE = [
    ("`[[X]]` [[Y]]", ["[[Y]]"]),
    ("``a `[[X]]` b`` [[Y]]", ["[[Y]]"]),
    ("``` [[X]] ``` [[Y]]", ["[[Y]]"]),
    ("`a\n[[X]]` [[Y]]", ["[[Y]]"]),
    ("`a\n\n[[X]]`", ["[[X]]"]),  # a code span never crosses a blank line
    ("a `unclosed [[X]]", ["[[X]]"]),
    ("```\n[[X]]\n```\n[[Y]]", ["[[Y]]"]),
    ("~~~python\n[[X]]\n~~~\n[[Y]]", ["[[Y]]"]),
    ("````\n```\n[[X]]\n```\n````\n[[Y]]", ["[[Y]]"]),
    ("```\n[[X]]\n~~~\n[[Z]]\n```\n[[Y]]", ["[[Y]]"]),
    ("```\n[[X]]", []),  # an unclosed fence runs to the end
    ("  ```\n  [[X]]\n  ```\n[[Y]]", ["[[Y]]"]),
    ("- item\n  ```\n  [[X]]\n  ```\n- [[Y]]", ["[[Y]]"]),
    ("1. a\n   ```\n   [[X]]\n   ```\n2. [[Y]]", ["[[Y]]"]),
    ("> q\n> ```\n> [[X]] #t\n> ```\n> [[Y]]", ["[[Y]]"]),
    ("> > ```\n> > [[X]]\n> > ```\n> [[Y]]", ["[[Y]]"]),
    ("text\n\n    [[X]]\n\n[[Y]]", ["[[Y]]"]),
    ("para\n\n\t[[X]]\n\n[[Y]]", ["[[Y]]"]),
    ("para\n    [[X]]", ["[[X]]"]),  # no blank line before: a continuation, not code
    ("- list\n\n    [[X]] continuation", ["[[X]]"]),
    ("``` js `x`\n[[Y]]", ["[[Y]]"]),  # a backtick in the info string: not a fence
]


@pytest.mark.parametrize("text, expected", CODE, ids=[case[0] for case in CODE])
def test_code_hides_links(text, expected):
    assert raws(text) == expected


def test_code_block_records():
    note = parse_note("x\n\n```Python skip\nprint(1)\n```\n\n    indented\n", "N.md")
    got = [(b.lang, b.options, b.line, b.code_line, b.end_line, b.code, b.fenced) for b in note.code_blocks]
    assert got == [
        ("python", ["skip"], 3, 4, 5, "print(1)\n", True),
        ("", [], 7, 7, 7, "indented\n", False),
    ]


# Math -----------------------------------------------------------------------------------------

MATH = [
    ("$[0, 2\\pi)$ [[B]]", ["[[B]]"]),
    ("$(0, 1]$ [[B]]", ["[[B]]"]),
    ("$\\sum_i [[y_i = k]]$ [[B]]", ["[[B]]"]),
    ("$\\left[ [x] \\right]$ [[B]]", ["[[B]]"]),
    ("$[[a]] + [[b]]$ [[C]]", ["[[C]]"]),
    ("$a [b](c.md) d$ [[B]]", ["[[B]]"]),
    ("$$[[a]]$$ [[B]]", ["[[B]]"]),
    ("$$\n\\sum [[y_i = k]]\n$$\n[[B]]", ["[[B]]"]),
    ("$$ x $$ [[B]] $$ y $$", ["[[B]]"]),
    ("$x$[[B]] $y$", ["[[B]]"]),
    ("costs $5 or $10 [[B]]", ["[[B]]"]),
    ("Price $5 and [[X]] and $6", ["[[X]]"]),
    ("\\$ [[B]] \\$", ["[[B]]"]),
    ("$\\$ [[X]]$ [[B]]", ["[[B]]"]),
]


@pytest.mark.parametrize("text, expected", MATH, ids=[case[0] for case in MATH])
def test_math_hides_links(text, expected):
    assert raws(text) == expected


def test_mask_code_keeps_length_and_lines():
    text = "a `[[x]]`\n$y$\n```\nz\n```\n"
    masked = mask_code(text)
    assert len(masked) == len(text)
    assert masked.count("\n") == text.count("\n")
    assert "[[x]]" not in masked


# Line numbers, Unicode, record strings ----------------------------------------------------------

LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n", "CR": "\r"}


@pytest.mark.parametrize("ending", LINE_ENDINGS.values(), ids=LINE_ENDINGS.keys())
def test_line_numbers_all_endings(ending):
    text = ending.join([
        "---", "tags: [a]", "up: '[[P]]'", "---", "# Title", "", "```", "[[hidden]]", "```",
        "text [[X]] #t", "> [!note] C", "para ^blk",
    ])
    note = parse_note(text, "N.md")
    assert [(link.raw, link.line) for link in note.links] == [("[[P]]", 3), ("[[X]]", 10)]
    assert [(tag.name, tag.line) for tag in note.tags] == [("a", 2), ("t", 10)]
    assert [(h.text, h.line) for h in note.headings] == [("Title", 5)]
    assert [(b.line, b.end_line) for b in note.code_blocks] == [(7, 9)]
    assert [c.line for c in note.callouts] == [11]
    assert [(b.id, b.line) for b in note.blocks] == [("blk", 12)]


def test_nfd_target_normalised():
    decomposed = unicodedata.normalize("NFD", "[[Müller]]")
    assert parse_note(decomposed, "N.md").links[0].target_text == "Müller"


def test_nfd_file_name_resolves(tmp_path):
    (tmp_path / unicodedata.normalize("NFD", "Café.md")).write_text("x", encoding="utf-8")
    (tmp_path / "Index.md").write_text("[[Café]] [[café]]", encoding="utf-8")
    vault = Vault.load(tmp_path)
    assert [link.target for link in vault.notes["Index.md"].links] == ["Café.md", "Café.md"]


def test_record_str_is_path_line():
    text = "---\ntags: [a]\n---\n# H\n[[X]] #t\n> [!note]\n```\ncode\n```\nend ^b\n"
    note = parse_note(text, "dir/N.md")
    records = [*note.links, *note.tags, *note.headings, *note.blocks, *note.callouts, *note.code_blocks]
    assert len(records) == 7
    for record in records:
        assert str(record) == f"dir/N.md:{record.line}"


def test_parse_never_raises_on_garbage():
    for text in ["", "\x00", "[[" * 1000, "`" * 1000, "$" * 1001, "---", "---\n---", "\ufeff#x"]:
        parse_note(text, "N.md")


@pytest.mark.parametrize("ending", LINE_ENDINGS.values(), ids=LINE_ENDINGS.keys())
def test_block_id_before_line_break(ending):
    text = ending.join(["para ^first", "next line", "", "- item ^second", "- other", ""])
    note = parse_note(text, "N.md")
    assert [(b.id, b.line) for b in note.blocks] == [("first", 1), ("second", 4)]


@pytest.mark.parametrize("ending", LINE_ENDINGS.values(), ids=LINE_ENDINGS.keys())
def test_code_span_stops_at_blank_line(ending):
    text = ending.join(["`a", "", "[[X]]`"])
    assert raws(text) == ["[[X]]"]
