"""The kb MkDocs plugin on small vaults, on this project's docs and on a copy of ml-notes."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config

from site_build import build_site

PROJECT = Path(__file__).resolve().parents[1]
ML_NOTES = Path("/work/shared/vaults/ml-notes")


def test_embed_whole_section_and_block(tmp_path):
    site = build_site(
        tmp_path,
        {
            "Host.md": "# Host\n\n![[Part]]\n\n![[Part#Second]]\n\n![[Part#^key]]\n",
            "Part.md": "# Part\n\nIntro text.\n\n## Second\n\nSecond body.\n\nKey fact. ^key\n",
        },
    )
    article = site.article("Host.md")
    assert article.count('class="admonition kb-embed"') == 3
    assert article.count("Intro text.") == 1
    assert article.count("Second body.") == 2
    assert article.count("Key fact.") == 3
    assert not site.warnings


def test_embed_cycle_stops_with_marker(tmp_path):
    site = build_site(
        tmp_path,
        {"A.md": "# A\n\nA text.\n\n![[B]]\n", "B.md": "# B\n\nB text.\n\n![[A]]\n"},
    )
    article = site.article("A.md")
    assert "embed cycle stopped here" in article
    assert article.count("B text.") == 1


def test_embed_long_chain_is_capped(tmp_path):
    notes = {f"N{i}.md": f"# N{i}\n\nbody {i}\n\n![[N{i + 1}]]\n" for i in range(1000)}
    notes["N1000.md"] = "# N1000\n\nend\n"
    site = build_site(tmp_path, notes)
    article = site.article("N0.md")
    assert "nested deeper than" in article
    assert "body 5" in article


def test_media_embeds(tmp_path):
    site = build_site(
        tmp_path,
        {
            "Media.md": (
                "# Media\n\n![[plot.png|300]]\n\n![[wide.png|640x480]]\n\n![[paper.pdf]]\n\n"
                "![[talk.mp3]]\n\n![[clip.mp4]]\n"
            ),
            "plot.png": b"\x89PNG\r\n\x1a\n",
            "wide.png": b"\x89PNG\r\n\x1a\n",
            "paper.pdf": b"%PDF-1.4\n",
            "talk.mp3": b"ID3",
            "clip.mp4": b"\x00\x00",
        },
    )
    article = site.article("Media.md")
    assert re.search(r'<img class="kb-image" src="[^"]*plot.png" alt="plot.png" width="300">', article)
    assert 'width="640" height="480"' in article
    assert '<object class="kb-pdf"' in article
    assert 'type="application/pdf"' in article
    assert '<audio class="kb-audio" controls' in article
    assert '<video class="kb-video" controls' in article
    for name in ("plot.png", "paper.pdf", "talk.mp3", "clip.mp4"):
        assert (site.site / name).is_file()


def test_callouts_become_admonitions(tmp_path):
    site = build_site(
        tmp_path,
        {
            "C.md": (
                "# C\n\n> [!tip] Remember\n> Outer text.\n> > [!warning]- Careful\n"
                "> > Inner text.\n\n> [!faq]+ Open\n> Answer.\n\n> plain quote\n"
            )
        },
    )
    article = site.article("C.md")
    assert re.search(r'<div class="admonition tip">\s*<p class="admonition-title">Remember', article)
    assert re.search(r'<details class="warning">\s*<summary>Careful', article)
    assert re.search(r'<details class="question" open="open">\s*<summary>Open', article)
    assert "<blockquote>" in article
    outer = article.index("Outer text.")
    inner = article.index("Inner text.")
    assert article.index('<details class="warning">') < inner
    assert outer < inner


def test_tags_link_to_index_and_feed_tags_plugin(tmp_path):
    site = build_site(
        tmp_path,
        {"T.md": "---\ntags: [ml]\n---\n# T\n\nAbout #attention and #snake_case.\n"},
    )
    article = site.article("T.md")
    assert re.search(r'<a class="kb-tag" href="\.\./tags/#tag:attention">#attention</a>', article)
    tags_page = (site.site / "tags/index.html").read_text(encoding="utf-8")
    for tag in ("ml", "attention", "snake_case"):
        assert f'id="tag:{tag}"' in tags_page


def test_math_reaches_page_unchanged(tmp_path):
    site = build_site(
        tmp_path,
        {"M.md": "# M\n\nPhase in $[0, 2\\pi)$ and $\\sum_i [[y_i = k]]$.\n\n$$\na^2 + b^2\n$$\n"},
    )
    article = site.article("M.md")
    assert '<span class="arithmatex">\\([0, 2\\pi)\\)</span>' in article
    assert "[[y_i = k]]" in article
    assert '<div class="arithmatex">' in article
    assert 'class="kb-link"' not in article


def test_display_math_inside_a_line(tmp_path):
    site = build_site(
        tmp_path,
        {"M.md": "# M\n\nWhat is $$\\int_0^1 f(x)\\,dx$$ here?\n\n$$a^2$$\n\n$$\nb^2\n$$\n"},
    )
    article = site.article("M.md")
    assert '<span class="arithmatex">\\(\\displaystyle \\int_0^1 f(x)\\,dx\\)</span> here?' in article
    assert "$" not in re.sub(r'<(span|div) class="arithmatex">.*?</\1>', "", article, flags=re.S)
    assert article.count('<div class="arithmatex">') == 2


def test_reference_section_is_folded(tmp_path):
    site = build_site(
        tmp_path,
        {"Q.md": "# Q\n\n## In my own words\n\nMine.\n\n## Reference explanation\n\nTheirs.\n\n## After\n\nMore.\n"},
    )
    article = site.article("Q.md")
    folded = re.search(r'<details class="kb-reference">\s*<summary>Reference explanation</summary>(.*?)</details>', article, re.S)
    assert folded is not None
    assert "Theirs." in folded.group(1)
    assert "More." not in folded.group(1)


def test_html_in_names_is_escaped(tmp_path):
    name = "<script>x</script> & co"
    site = build_site(
        tmp_path,
        {
            "Evil <b>.md": "---\ntags: ['<i>t</i>']\n---\n# Evil\n\n[[Other|<img src=x onerror=alert(1)>]]\n",
            "Other.md": f"# Other\n\n[[Evil <b>]] and [[{name}]]\n",
        },
    )
    article = site.article("Evil <b>.md")
    assert "<img src=x" not in article
    assert "&lt;img src=x onerror=alert(1)&gt;" in article
    other = site.article("Other.md")
    assert "<script>x</script>" not in other
    raw = (site.site / "assets/kb/graph.json").read_text(encoding="utf-8")
    assert "<" not in raw
    labels = {node["label"] for node in json.loads(raw)["nodes"]}
    assert "Evil <b>" in labels


def test_links_without_directory_urls(tmp_path):
    site = build_site(
        tmp_path,
        {
            "a/From.md": "# From\n\n[[To#Part Two]] and [[To#^blk]] and [text](../b/To.md)\n",
            "b/To.md": "# To\n\n## Part Two\n\nA line. ^blk\n",
        },
        directory_urls=False,
    )
    links = [link for link in site.links("a/From.md") if link.attributes.get("class") == "kb-link"]
    assert len(links) == 3
    for link in links:
        target, fragment = site.resolve("a/From.md", link.href)
        assert target == site.site / "b/To.html"
        if fragment:
            assert fragment in site.ids(target)
    assert [site.resolve("a/From.md", link.href)[1] for link in links] == ["part-two", "block-blk", ""]


def test_duplicate_and_unicode_headings(tmp_path):
    site = build_site(
        tmp_path,
        {
            "H.md": "# H\n\n## Setup\n\n## Setup\n\n## Größe & Ähnlichkeit!\n\n## 学习\n",
            "L.md": "# L\n\n[[H#Setup]] [[H#Größe & Ähnlichkeit!]] [[H#学习]]\n",
        },
    )
    ids = site.ids(site.page_path("H.md"))
    for link in [link for link in site.links("L.md") if link.attributes.get("class") == "kb-link"]:
        _target, fragment = site.resolve("L.md", link.href)
        assert fragment in ids


def test_ambiguous_link_warns(tmp_path):
    site = build_site(
        tmp_path,
        {"x/Name.md": "# one\n", "y/Name.md": "# two\n", "Use.md": "# Use\n\n[[Name]]\n"},
    )
    assert any("Use.md:3" in message and "matches 2 files" in message for message in site.warnings)


def _build_project_copy(tmp_path: Path, docs: Path, config: str) -> list[str]:
    shutil.copytree(docs, tmp_path / "docs")
    (tmp_path / "mkdocs.yml").write_text(config, encoding="utf-8")
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logging.getLogger("mkdocs").addHandler(handler)
    try:
        build(load_config(config_file=str(tmp_path / "mkdocs.yml"), site_dir=str(tmp_path / "site")))
    finally:
        logging.getLogger("mkdocs").removeHandler(handler)
    return messages


def test_project_docs_build_reports_only_content_links(tmp_path):
    # Built in place, so snippet embeds reuse the project's run cache in .kb/.
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logging.getLogger("mkdocs").addHandler(handler)
    try:
        build(load_config(config_file=str(PROJECT / "mkdocs.yml"), site_dir=str(tmp_path / "site")))
    finally:
        logging.getLogger("mkdocs").removeHandler(handler)
    for message in messages:
        assert re.match(r"kb: .+\.md:\d+: warning: ", message), message
    assert (tmp_path / "site/graph/index.html").is_file()
    assert (tmp_path / "site/assets/kb/vendor/katex/dist/katex.min.js").is_file()


@pytest.mark.skipif(not ML_NOTES.is_dir(), reason="ml-notes vault not present")
def test_ml_notes_builds_with_only_broken_link_warnings(tmp_path):
    config = (
        "site_name: ml-notes\ntheme:\n  name: material\n  font: false\n"
        "plugins:\n  - search\n  - tags\n  - kb\n"
    )
    messages = _build_project_copy(tmp_path, ML_NOTES, config)
    assert messages
    for message in messages:
        assert re.match(r"kb: .+\.md:\d+: warning: \[\[.+\]\]: no note or file named", message), message


def test_unreadable_notes_warn_and_site_builds(tmp_path):
    site = build_site(tmp_path, {
        "index.md": "# Home\n\n[[Wide]]\n",
        "Wide.md": "# Wide\n\nSaved by Notepad.\n".encode("utf-16"),
        "Image.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    })
    assert "Saved by Notepad." in site.article("Wide.md")
    assert not site.page_path("Image.md").exists()
    assert any(message.startswith("kb: Wide.md:1: warning: the note is saved as UTF-16")
               for message in site.warnings)
    assert any(message.startswith("kb: Image.md: warning: the file ends in .md but holds binary")
               for message in site.warnings)
