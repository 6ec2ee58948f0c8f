"""Regressions of Obsidian-to-site tools, checked on the HTML that the kb plugin builds."""

from __future__ import annotations

import re

import pytest

from site_build import build_site


@pytest.mark.parametrize("directory_urls", [True, False])
def test_escaped_pipe_in_table_link(tmp_path, directory_urls):
    site = build_site(
        tmp_path,
        {
            "Index.md": """\
                | topic | link |
                | --- | --- |
                | loss | [[Losses#Hinge\\|hinge loss]] |
                | loss | [[Losses#Hinge|hinge loss]] |
                """,
            "Losses.md": "# Losses\n\n## Hinge\n\nmax(0, 1 - y f(x))\n",
        },
        directory_urls=directory_urls,
    )
    article = site.article("Index.md")
    links = [link for link in site.links("Index.md") if link.attributes.get("class") == "kb-link"]
    assert len(links) == 2
    for link in links:
        assert link.text == "hinge loss"
        target, fragment = site.resolve("Index.md", link.href)
        assert target == site.page_path("Losses.md")
        assert fragment == "hinge"
        assert fragment in site.ids(target)
        assert "%5C" not in link.href.upper()
        assert "\\" not in link.href
    rows = re.findall(r"<tr>(.*?)</tr>", article, re.S)
    assert len(rows) == 3
    for row in rows:
        assert len(re.findall(r"<t[dh][ >]", row)) == 2
    assert "\\" not in re.sub(r"<[^>]+>", "", "".join(rows))


def test_same_note_heading_link(tmp_path):
    site = build_site(
        tmp_path,
        {"Loss.md": "# Loss\n\nThe proof is in [[#Derivation]].\n\n## Derivation\n\nSteps.\n"},
    )
    links = [link for link in site.links("Loss.md") if link.text == "Derivation"]
    assert len(links) == 1
    target, fragment = site.resolve("Loss.md", links[0].href)
    assert target == site.page_path("Loss.md")
    assert fragment in site.ids(target)
    heading = re.search(r'<h2 id="([^"]+)">Derivation', site.html("Loss.md"))
    assert heading is not None
    assert fragment == heading.group(1)


def test_case_insensitive_link_and_backlink(tmp_path):
    site = build_site(
        tmp_path,
        {
            "Gradient Descent.md": "# Gradient Descent\n\nStep downhill.\n",
            "Training.md": "# Training\n\nWe use [[gradient descent]] here.\n",
        },
    )
    links = [link for link in site.links("Training.md") if link.text == "gradient descent"]
    assert len(links) == 1
    target, _fragment = site.resolve("Training.md", links[0].href)
    assert target == site.page_path("Gradient Descent.md")
    assert target.is_file()
    assert not site.warnings

    backlinks = site.article("Gradient Descent.md").split('class="kb-backlinks"', 1)[1]
    assert "Training" in backlinks
    assert "We use gradient descent here." in backlinks
    backlink = [link for link in site.links("Gradient Descent.md") if link.text == "Training"]
    assert site.resolve("Gradient Descent.md", backlink[0].href)[0] == site.page_path("Training.md")


@pytest.mark.parametrize("unresolved", [True, False])
def test_unresolved_link_in_graph_and_site(tmp_path, unresolved):
    site = build_site(
        tmp_path,
        {"Roadmap.md": "# Roadmap\n\nLater: [[Variational Inference]].\n"},
        unresolved=unresolved,
    )
    labels = [node["label"] for node in site.graph()["nodes"]]
    if unresolved:
        assert "Variational Inference" in labels
    else:
        assert "Variational Inference" not in labels
    assert not any(label.startswith("/") for label in labels)

    assert 'class="kb-unresolved"' in site.article("Roadmap.md")
    for page in site.site.rglob("*.html"):
        relative = page.relative_to(site.site).as_posix()
        if relative.startswith(("search/", "404")):
            continue
        note = "Roadmap.md" if relative.startswith("Roadmap") else None
        if note is None:
            continue
        for link in site.links(note):
            if link.href.startswith(("http:", "https:", "#", "mailto:")):
                continue
            target, _fragment = site.resolve(note, link.href)
            assert target.exists(), f"{link.href} on {relative} leads to a missing page"
    assert any("Roadmap.md:3" in message for message in site.warnings)


def test_path_qualified_link_same_edge(tmp_path):
    notes = {
        "topics/Attention.md": "# Attention\n",
        "A.md": "# A\n\nSee [[topics/Attention]].\n",
        "B.md": "# B\n\nSee [[Attention]].\n",
    }
    site = build_site(tmp_path, notes)
    edges = [(link["source"], link["target"]) for link in site.graph()["links"]]
    assert edges.count(("A.md", "topics/Attention.md")) == 1
    assert edges.count(("B.md", "topics/Attention.md")) == 1
    assert not [edge for edge in edges if edge[1] != "topics/Attention.md"]
    node_ids = [node["id"] for node in site.graph()["nodes"]]
    assert node_ids.count("topics/Attention.md") == 1
    assert len(node_ids) == 3
