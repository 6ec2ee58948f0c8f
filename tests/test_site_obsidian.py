"""Obsidian Markdown and generated pages, checked on the HTML that the kb plugin builds."""

from __future__ import annotations

import re

from site_build import build_site

MINIMAL_CONFIG = """\
site_name: minimal
theme:
  name: material
  font: false
plugins:
  - kb
"""


def _body(site, note: str) -> str:
    """Return the note's rendered content, without the local graph and backlinks."""
    article = site.article(note)
    return article.split('<div class="kb-graph', 1)[0]


def test_list_after_paragraph_line(tmp_path):
    site = build_site(tmp_path, {"T.md": "# T\n\nThings to do:\n- [ ] first\n- [x] second\n"})
    body = _body(site, "T.md")
    assert "<p>Things to do:</p>" in body
    assert body.count('class="task-list-item"') == 2
    assert "- [ ]" not in body
    assert re.search(r"<input[^>]*checked", body)


# (note body, text that must stay in one paragraph, number of list items expected)
PARAGRAPH_CONTINUATIONS = [
    ("Four heads of width\n32. The scores follow.\n", "32. The scores", 0),
    ("Steps run to\n1000) and stop.\n", "1000) and stop", 0),
    ("A line\n-\nbelow.\n", None, 0),
    ("Then:\n1. first\n2. second\n", None, 2),
    ("$$\nx = a\n+ b\n- c\n$$\n", "+ b", 0),
    ("Code `a\n+ b` here.\n", "+ b", 0),
]


def test_paragraph_continuations_stay_text(tmp_path):
    notes = {f"P{index}.md": f"# P\n\n{body}" for index, (body, _, _) in enumerate(PARAGRAPH_CONTINUATIONS)}
    site = build_site(tmp_path, notes)
    for index, (_, kept, items) in enumerate(PARAGRAPH_CONTINUATIONS):
        body = _body(site, f"P{index}.md")
        if kept is not None:
            assert kept in body, (index, body)
        assert body.count("<li") == items, (index, body)


# (note body, HTML fragments the page must contain, fragments it must not contain)
OBSIDIAN_RENDERING = [
    ("| a |\n| --- |\n| 1 |\nnext line\n", ["<td>1</td>", "<p>next line</p>"], ["| a |"]),
    ("1) first\n2) second\n", ["<ol>\n<li>first</li>\n<li>second</li>\n</ol>"], ["1)"]),
    ("> [!note] N\n> 3) three\n> 4) four\n", ['<ol start="3">', "<li>three</li>"], ["3)"]),
    ("- a\n- b\n1. x\n2. y\n", ["<li>b</li>\n</ul>\n<ol>", "<li>x</li>"], []),
    ("1. x\n2. y\n- a\n", ["<li>y</li>\n</ol>\n<ul>", "<li>a</li>"], []),
    ("5. five\n6. six\n", ['<ol start="5">'], []),
    ("Some ~~struck~~ and ~single~ tilde.\n", ["<del>struck</del>", "~single~"], ["<sub>"]),
    ("Visit https://example.com now.\n", ['<a href="https://example.com">'], []),
    ("Block:\n$$\na+b\n$$\nafter\n", ['<p>Block:</p>\n<div class="arithmatex">', "<p>after</p>"], ["$$"]),
    ("> [!note] N\n> Text:\n> $$\n> c+d\n> $$\n", ['<p>Text:</p>\n<div class="arithmatex">'], ["$$"]),
    ("## C++ vs C#\n\n## Title ##\n", ['">C++ vs C#<a class="headerlink"', '">Title<a class="headerlink"'], []),
    ("####### seven\n", ["<p>####### seven</p>"], ["<h6"]),
]


def test_obsidian_rendering_cases(tmp_path):
    notes = {f"R{index}.md": f"# R\n\n{body}" for index, (body, _, _) in enumerate(OBSIDIAN_RENDERING)}
    site = build_site(tmp_path, notes)
    for index, (_, present, absent) in enumerate(OBSIDIAN_RENDERING):
        body = _body(site, f"R{index}.md")
        for fragment in present:
            assert fragment in body, (index, fragment, body)
        for fragment in absent:
            assert fragment not in body, (index, fragment, body)


def test_list_after_paragraph_in_code_kept(tmp_path):
    site = build_site(tmp_path, {"T.md": "# T\n\n```text\nHeader:\n- not a list\n```\n"})
    body = _body(site, "T.md")
    assert "Header:\n- not a list" in body
    assert "<li>" not in body


def test_nested_lists_by_two_spaces_and_tabs(tmp_path):
    site = build_site(
        tmp_path,
        {"T.md": "# T\n\n- a\n  - b\n    - c\n- d\n\t- tab child\n- e\n    - four spaces\n"},
    )
    body = _body(site, "T.md")
    assert re.search(r"<li>a<ul>\s*<li>b<ul>\s*<li>c</li>", body)
    assert re.search(r"<li>d<ul>\s*<li>tab child</li>", body)
    assert re.search(r"<li>e<ul>\s*<li>four spaces</li>", body)
    assert "- " not in re.sub(r"<[^>]+>", "", body)


def test_footnotes_marks_and_line_breaks(tmp_path):
    site = build_site(
        tmp_path,
        {"T.md": "# T\n\nSee==this== and ~~that~~[^1].\nsecond line\n\n[^1]: The note.\n"},
        config=MINIMAL_CONFIG,
    )
    body = _body(site, "T.md")
    assert "<mark>this</mark>" in body
    assert "<del>that</del>" in body
    assert 'class="footnote-ref"' in body
    assert "The note." in body
    assert re.search(r"<br\s*/?>\s*second line", body)


def test_minimal_config_renders_task_list(tmp_path):
    site = build_site(tmp_path, {"T.md": "# T\n\n- [ ] open\n- [x] done\n"}, config=MINIMAL_CONFIG)
    body = _body(site, "T.md")
    assert body.count('class="task-list-item"') == 2


def test_strict_line_breaks_option(tmp_path):
    config = MINIMAL_CONFIG.replace("  - kb\n", "  - kb:\n      strict_line_breaks: true\n")
    site = build_site(tmp_path, {"T.md": "# T\n\nfirst line\nsecond line\n"}, config=config)
    assert "<br" not in _body(site, "T.md")


def test_comments_hidden_inline_and_block(tmp_path):
    site = build_site(
        tmp_path,
        {
            "T.md": (
                "# T\n\nShown %%inline secret%% text.\n\n%%\nblock secret\n[[Other]]\n%%\n\n"
                "Code keeps `%%literal%%` marks.\n"
            ),
            "Other.md": "# Other\n",
        },
    )
    body = _body(site, "T.md")
    assert "secret" not in body
    assert "%%" not in body.replace("%%literal%%", "")
    assert "Shown  text." in body
    assert "<code>%%literal%%</code>" in body
    assert 'href="../Other/"' not in body


def test_callout_title_links_and_tags(tmp_path):
    site = build_site(
        tmp_path,
        {
            "T.md": '# T\n\n> [!tip] See [[Other]] and #ml <b>"x"</b>\n> Body.\n',
            "Other.md": "# Other\n",
        },
    )
    body = _body(site, "T.md")
    title = re.search(r'<p class="admonition-title">(.*?)</p>', body, re.S)
    assert title is not None
    assert '<a class="kb-link" href="../Other/" data-kb-note="Other.md">Other</a>' in title.group(1)
    assert 'class="kb-tag"' in title.group(1)
    assert "[[" not in title.group(1)
    assert "<b>" not in title.group(1)


def test_unresolved_pdf_embed_without_bang(tmp_path):
    site = build_site(tmp_path, {"T.md": "# T\n\n![[lecture.pdf#page=3]]\n"})
    body = _body(site, "T.md")
    unresolved = re.search(r'<span class="kb-unresolved"[^>]*>(.*?)</span>', body)
    assert unresolved is not None
    assert not unresolved.group(1).startswith("!")
    assert unresolved.group(1).startswith("lecture.pdf")


def test_backlinks_list_each_note_once(tmp_path):
    site = build_site(
        tmp_path,
        {
            "Target.md": "# Target\n",
            "Source.md": "---\nrelated: '[[Target]]'\n---\n# Source\n\nBody link to [[Target]].\n",
        },
    )
    backlinks = site.article("Target.md").split('class="kb-backlinks"', 1)[1]
    assert backlinks.count('class="kb-backlink"') == 1
    assert backlinks.count('class="kb-context"') == 1
    assert "Body link to Target." in backlinks


QUESTION_NOTES = {
    "index.md": "# Home\n\n[Open questions](questions.md)\n",
    "Technical notes.md": (
        "# Technical notes\n\n- Why does attention scale scores? "
        "[[attention/Transformers|Transformers]] ^q-transformers\n"
    ),
    "attention/Transformers.md": "# Transformers\n",
}


def test_questions_page_links_rendered(tmp_path):
    site = build_site(tmp_path, QUESTION_NOTES)
    article = site.article("questions.md")
    text = re.sub(r"<[^>]+>", "", article)
    assert "[[" not in text
    links = [link for link in site.links("questions.md") if link.attributes.get("class") == "kb-link"]
    assert any(link.text == "Technical notes" for link in links)
    line_link = [link for link in links if link.text == "line 3"]
    assert len(line_link) == 1
    target, fragment = site.resolve("questions.md", line_link[0].href)
    assert target == site.page_path("Technical notes.md")
    assert fragment == "block-q-transformers"
    assert fragment in site.ids(target)
    assert 'class="kb-badge' in article


def test_badges_styled_light_and_dark(tmp_path):
    site = build_site(tmp_path, {"index.md": "# Home\n"})
    css = (site.site / "assets/kb/kb.css").read_text(encoding="utf-8")
    assert ".kb-badge {" in css
    assert ".kb-badge-open" in css
    assert '[data-md-color-scheme="slate"] .md-typeset .kb-badge-passed' in css


def test_vault_note_with_marker_is_filled(tmp_path):
    notes = dict(QUESTION_NOTES)
    notes["questions.md"] = "# My questions\n\nWhat I still ask.\n\n<!-- kb:questions -->\n"
    notes["graph.md"] = "# All notes\n\n<!-- kb:graph -->\n\n`<!-- kb:graph -->` in code stays.\n"
    site = build_site(tmp_path, notes)
    questions = site.article("questions.md")
    assert "What I still ask." in questions
    assert questions.count("<h1") == 1
    assert "line 3" in questions
    graph = site.article("graph.md")
    assert graph.count('class="kb-graph kb-graph-global"') == 1
    assert "&lt;!-- kb:graph --&gt;" in graph
    assert not [message for message in site.warnings if "questions.md" in message]
    index_links = [link for link in site.links("index.md") if link.text == "Open questions"]
    assert site.resolve("index.md", index_links[0].href)[0] == site.page_path("questions.md")


def test_case_collision_with_generated_page(tmp_path):
    site = build_site(
        tmp_path,
        {"index.md": "# Home\n", "Questions.md": "# Mine\n\nOwn list.\n\n<!-- kb:questions -->\n"},
    )
    assert any("Questions.md" in message and "case-insensitive" in message for message in site.warnings)
    assert "Own list." in site.article("Questions.md")
    assert not (site.site / "questions").exists()


def test_home_page_generated_without_index(tmp_path):
    site = build_site(tmp_path, {"Alpha.md": "# Alpha\n", "sub/Beta.md": "# Beta\n"})
    home = site.site / "index.html"
    assert home.is_file()
    links = {link.text: link.href for link in site.links("index.md")}
    assert "Alpha" in links
    assert site.resolve("index.md", links["Alpha"])[0] == site.page_path("Alpha.md")
    assert site.resolve("index.md", links["sub/Beta"])[0] == site.page_path("sub/Beta.md")
    assert site.resolve("index.md", links["Graph of notes"])[0] == site.site / "graph/index.html"


def test_graph_labels_and_exclude(tmp_path):
    notes = {
        "index.md": "---\ntitle: Home\n---\n# Start here\n\n[[a/Same]] [[b/Same]] [[kb/Manual]]\n",
        "a/Same.md": "# Same\n",
        "b/Same.md": "# Same\n",
        "kb/Manual.md": "# Manual\n",
    }
    site = build_site(tmp_path, notes)
    nodes = {node["id"]: node for node in site.graph()["nodes"]}
    assert nodes["index.md"]["label"] == "Home"
    assert nodes["a/Same.md"]["label"] == "a/Same"
    assert nodes["b/Same.md"]["label"] == "b/Same"
    assert "kb/Manual.md" not in nodes
    assert 'class="kb-graph kb-graph-local"' not in site.article("kb/Manual.md")

    config = (
        "site_name: t\ntheme:\n  name: material\n  font: false\n"
        "plugins:\n  - kb:\n      graph_exclude: []\n"
    )
    kept = build_site(tmp_path / "kept", notes, config=config)
    assert "kb/Manual.md" in {node["id"] for node in kept.graph()["nodes"]}


def test_site_url_links_stay_relative(tmp_path):
    config = MINIMAL_CONFIG.replace("site_name: minimal\n", "site_name: minimal\nsite_url: http://127.0.0.1:8000/\n")
    site = build_site(tmp_path, {"index.md": "# Home\n\n[[Other]]\n", "Other.md": "# Other\n"}, config=config)
    page = site.html("Other.md")
    absolute = re.findall(r'(?:href|src)="(http://127\.0\.0\.1:8000[^"]*)"', page)
    canonical = re.findall(r'<link rel="canonical" href="([^"]+)"', page)
    assert [url for url in absolute if url not in canonical] == []
