"""Faults that published Obsidian parsers and site generators have shipped, one class per kind.

Each class covers the whole kind of fault with several inputs, not only the first example
that exposed it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.graph import build_graph, display_names
from kb.parse import parse_note
from kb.vault import Vault


def write_vault(root: Path, files: dict[str, str]) -> Vault:
    for path, text in files.items():
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    return Vault.load(root)


class TestEscapedPipeInTable:
    """A wikilink in a table cell escapes its pipe as ``\\|``, once or not at all."""

    TABLE = (
        "| topic | link |\n"
        "| --- | --- |\n"
        "| loss | [[Losses#Hinge\\|hinge loss]] |\n"
        "| loss | [[Losses#Hinge|hinge loss]] |\n"
        "| img | ![[plot.png\\|200]] |\n"
        "| bare | [[Losses\\|losses]] |\n"
    )

    def test_both_rows_same_link(self, tmp_path):
        vault = write_vault(tmp_path, {"Index.md": self.TABLE, "Losses.md": "## Hinge\n"})
        links = vault.notes["Index.md"].links
        got = [(link.target, link.heading, link.display) for link in links[:2]]
        assert got == [("Losses.md", ["Hinge"], "hinge loss")] * 2
        assert links[0].heading_exists is True

    def test_no_backslash_in_fields(self):
        for link in parse_note(self.TABLE, "Index.md").links:
            assert "\\" not in link.target_text
            assert "\\" not in (link.display or "")
            assert "\\" not in "".join(link.heading or [])

    def test_escaped_size_and_display(self):
        links = parse_note(self.TABLE, "Index.md").links
        assert (links[2].target_text, links[2].size, links[2].display) == ("plot.png", "200", None)
        assert (links[3].target_text, links[3].display) == ("Losses", "losses")


class TestDisplayStopsAtBrackets:
    """Display text ends at the first ``]]``, however many links share a line."""

    @pytest.mark.parametrize(
        "text, displays",
        [
            ("Read [[Part 1|one]], [[Part 2|two]] and [[Part 3|three]] next.", ["one", "two", "three"]),
            ("[[A|x]][[B|y]]", ["x", "y"]),
            ("![[a.png|10]] [[B|b]] ![[c.png|20x30]]", [None, "b", None]),
            ("[[A|a]] ] [[B|b]]", ["a", "b"]),
            ("[[A|with [brackets] inside]] [[B]]", ["with [brackets] inside", None]),
        ],
    )
    def test_display_texts(self, text, displays):
        assert [link.display for link in parse_note(text, "N.md").links] == displays

    def test_trailing_text_not_in_link(self):
        text = "Read [[Part 1|one]], [[Part 2|two]] and [[Part 3|three]] next."
        last = parse_note(text, "N.md").links[-1]
        assert last.raw == "[[Part 3|three]]"
        assert text[last.end:] == " next."


class TestBracketsInMath:
    """Brackets in LaTeX are intervals, Iverson brackets or matrices, never links."""

    @pytest.mark.parametrize(
        "text",
        [
            "The phase lies in $[0, 2\\pi)$ and the count is $\\sum_i [[y_i = k]]$.",
            "$[[y = k]]$",
            "$(0, 1]$ and $[a, b]$",
            "$$\n\\mathbb{1}[[x > 0]]\n$$",
            "$$ A = \\begin{bmatrix} [[1]] \\end{bmatrix} $$",
            "$f([x](y))$",
            "$\\left[ [x] \\right]$",
        ],
    )
    def test_no_links_in_math(self, text):
        assert parse_note(text, "N.md").links == []

    def test_math_does_not_swallow_later_links(self):
        text = "$[0, 1)$ then [[Real Link]] and $[[y]]$ and [[Second]]"
        assert [link.raw for link in parse_note(text, "N.md").links] == ["[[Real Link]]", "[[Second]]"]

    def test_dollar_inside_wikilink(self):
        text = "[[Cost $5]] and $x$ and [[Price $10|ten $]]"
        assert [link.target_text for link in parse_note(text, "N.md").links] == ["Cost $5", "Price $10"]


class TestTagForms:
    """Tag characters: letters of any script, digits, ``_``, ``-``, ``/``; one non-digit."""

    def test_example_line(self):
        note = parse_note("#kebab-case #snake_case #学习 #2024-review #2024", "N.md")
        assert note.tag_names == ["kebab-case", "snake_case", "学习", "2024-review"]

    @pytest.mark.parametrize(
        "text, expected",
        [
            ("#2024 #1984 #0", []),
            ("#v2 #2d #3-body", ["v2", "2d", "3-body"]),
            ("#Ελληνικά #русский #한국어 #عربي", ["ελληνικά", "русский", "한국어", "عربي"]),
            ("#área/sub_tema", ["área/sub_tema"]),
            ("#a-_-b", ["a-_-b"]),
        ],
    )
    def test_tag_variants(self, text, expected):
        assert parse_note(text, "N.md").tag_names == expected

    def test_digit_only_in_frontmatter_kept(self):
        # In the tags property the value is the tag itself, so YAML numbers are kept as text.
        note = parse_note("---\ntags: [2024, ml]\n---\n", "N.md")
        assert note.tag_names == ["2024", "ml"]


class TestSameNoteHeading:
    """``[[#Heading]]`` links a note to one of its own headings."""

    def test_self_link_and_heading(self, tmp_path):
        vault = write_vault(tmp_path, {"Loss.md": "The proof is in [[#Derivation]].\n\n## Derivation\n"})
        link = vault.notes["Loss.md"].links[0]
        assert (link.target, link.heading, link.self_link) == ("Loss.md", ["Derivation"], True)
        assert link.heading_exists is True

    def test_self_block_and_missing_heading(self, tmp_path):
        vault = write_vault(tmp_path, {"Loss.md": "[[#^key]] [[#Nope]]\n\nText ^key\n"})
        block, heading = vault.notes["Loss.md"].links
        assert (block.target, block.block, block.block_exists) == ("Loss.md", "key", True)
        assert (heading.target, heading.heading_exists) == ("Loss.md", False)

    def test_heading_match_ignores_case(self, tmp_path):
        vault = write_vault(tmp_path, {"A.md": "[[#derivation]]\n# DERIVATION\n"})
        assert vault.notes["A.md"].links[0].heading_exists is True


class TestCaseInsensitive:
    """Names match ignoring case and Unicode normalisation, in every link form."""

    @pytest.mark.parametrize(
        "link",
        [
            "[[gradient descent]]",
            "[[GRADIENT DESCENT]]",
            "[[gradient descent.MD]]",
            "[[topics/gradient descent]]",
            "[x](gradient%20descent.md)",
            "[x](Topics/Gradient%20Descent.md)",
            "![[gradient descent#Step size]]",
        ],
    )
    def test_link_forms_resolve(self, tmp_path, link):
        vault = write_vault(tmp_path, {"topics/Gradient Descent.md": "# Step size\n", "Other.md": link})
        assert vault.notes["Other.md"].links[0].target == "topics/Gradient Descent.md"

    def test_backlink_in_graph(self, tmp_path):
        vault = write_vault(tmp_path, {"Gradient Descent.md": "", "Other.md": "[[gradient descent]]"})
        G = build_graph(vault)
        assert list(G.predecessors("Gradient Descent.md")) == ["Other.md"]


class TestDuplicateNames:
    """The same file name in two folders: folder paths choose, bare names are ambiguous."""

    FILES = {"week1/Summary.md": "", "week2/Summary.md": "", "Index.md": "[[week1/Summary]]\n[[week2/Summary]]\n[[Summary]]\n"}

    def test_folder_paths_resolve(self, tmp_path):
        links = write_vault(tmp_path, self.FILES).notes["Index.md"].links
        assert [link.target for link in links[:2]] == ["week1/Summary.md", "week2/Summary.md"]
        assert [link.ambiguous for link in links[:2]] == [False, False]

    def test_bare_name_ambiguous(self, tmp_path):
        link = write_vault(tmp_path, self.FILES).notes["Index.md"].links[2]
        assert link.ambiguous is True
        assert link.candidates == ["week1/Summary.md", "week2/Summary.md"]
        assert link.target == "week1/Summary.md"  # equal depth: alphabetical order decides

    def test_same_folder_wins(self, tmp_path):
        files = {**self.FILES, "week2/Notes.md": "[[Summary]]"}
        link = write_vault(tmp_path, files).notes["week2/Notes.md"].links[0]
        assert (link.target, link.ambiguous) == ("week2/Summary.md", True)

    def test_same_folder_wins_for_each_linking_folder(self, tmp_path):
        files = {**self.FILES, "week1/Notes.md": "[[Summary]]", "week2/Notes.md": "[[Summary]]"}
        notes = write_vault(tmp_path, files).notes
        assert notes["week1/Notes.md"].links[0].target == "week1/Summary.md"
        assert notes["week2/Notes.md"].links[0].target == "week2/Summary.md"
        assert notes["Index.md"].links[2].target == "week1/Summary.md"

    def test_shallowest_path_wins(self, tmp_path):
        files = {"a/b/Summary.md": "", "c/Summary.md": "", "z/y/x/Index.md": "[[Summary]]"}
        link = write_vault(tmp_path, files).notes["z/y/x/Index.md"].links[0]
        assert link.target == "c/Summary.md"

    def test_root_file_wins(self, tmp_path):
        files = {"Summary.md": "", "a/Summary.md": "", "b/Index.md": "[[Summary]]"}
        link = write_vault(tmp_path, files).notes["b/Index.md"].links[0]
        assert link.target == "Summary.md"

    def test_ambiguity_reported_with_line(self, tmp_path):
        vault = write_vault(tmp_path, self.FILES)
        problems = [p for p in vault.link_problems() if p.code == "ambiguous-link"]
        assert [(p.path, p.line) for p in problems] == [("Index.md", 3)]
        assert "week1/Summary.md, week2/Summary.md" in problems[0].message


class TestUnresolvedInGraph:
    """An unresolved target is a graph node labelled with its plain name."""

    @pytest.mark.parametrize(
        "link, label",
        [
            ("[[Variational Inference]]", "Variational Inference"),
            ("[[/Variational Inference]]", "Variational Inference"),
            ("[[ideas/Variational Inference]]", "Variational Inference"),
            ("[[Variational Inference#ELBO|vi]]", "Variational Inference"),
        ],
    )
    def test_unresolved_label(self, tmp_path, link, label):
        G = build_graph(write_vault(tmp_path, {"Roadmap.md": link}))
        unresolved = [data for _node, data in G.nodes(data=True) if data["unresolved"]]
        assert [data["label"] for data in unresolved] == [label]
        assert all("/" not in name for name in display_names(G).values())

    def test_hidden_when_excluded(self, tmp_path):
        G = build_graph(write_vault(tmp_path, {"Roadmap.md": "[[Variational Inference]]"}), include_unresolved=False)
        assert list(G.nodes) == ["Roadmap.md"]
        assert G.number_of_edges() == 0


    def test_warning_suggests_close_name(self, tmp_path):
        files = {
            "Attention.md": "",
            "Roadmap.md": "[[Atention]] and [[ideas/Atention]]\n[[Atention]] [[Zebra]]\n",
        }
        problems = [p for p in write_vault(tmp_path, files).link_problems() if p.code == "unresolved-link"]
        assert [(p.line, "did you mean [[Attention]]?" in p.message) for p in problems] == [
            (1, True), (1, True), (2, True), (2, False)
        ]


class TestPathQualifiedInGraph:
    """``[[topics/Attention]]`` and a bare ``[[Attention]]`` give the same single edge."""

    @pytest.mark.parametrize("link", ["[[topics/Attention]]", "[[Attention]]", "[[topics/Attention.md]]", "[a](topics/Attention.md)"])
    def test_one_edge_to_file(self, tmp_path, link):
        G = build_graph(write_vault(tmp_path, {"topics/Attention.md": "", "Transformer.md": link}))
        assert [(u, v) for u, v, _kind in G.edges(keys=True)] == [("Transformer.md", "topics/Attention.md")]
        assert display_names(G)["topics/Attention.md"] == "Attention"

    def test_both_forms_one_edge(self, tmp_path):
        vault = write_vault(tmp_path, {"topics/Attention.md": "", "T.md": "[[topics/Attention]] [[Attention]]"})
        G = build_graph(vault)
        assert G.number_of_edges() == 1
        assert G.edges["T.md", "topics/Attention.md", "link"]["count"] == 2
