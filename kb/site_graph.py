"""Graph data and backlinks of the study site, both read from :func:`kb.graph.build_graph`."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable

import networkx as nx

from kb.model import Note
# The Questions page's inline rendering: emphasis, code and math, everything else escaped.
from kb.inline_html import inline_html
from kb.site_markdown import escape_text
from kb.vault import Vault

__all__ = ["backlinks_html", "graph_json", "local_graph_html"]


def graph_json(
    G: nx.MultiDiGraph,
    url_for: Callable[[str], str | None],
    *,
    include_attachments: bool,
    color_by: str,
    local_depth: int,
    exclude: tuple[str, ...] = (),
    titles: dict[str, str] | None = None,
) -> str:
    """Serialise ``G`` for the graph view; ``url_for`` maps a vault path to a site-root URL.

    ``exclude`` leaves out folders (ending in ``/``) and paths; ``titles`` replaces the label
    of a node (an index page shows its page title). Notes that share a name are labelled
    with their path, so the reader can tell them apart.

    Strings are JSON-escaped, and ``<``, ``>`` and ``&`` are written as ``\\u`` escapes too, so
    the data stays inert even if someone pastes it into a page. The browser script escapes
    labels again before it shows them as HTML.
    """
    nodes = []
    kept = set()
    for node, data in G.nodes(data=True):
        if "kind" not in data:
            continue  # a generated page (graph, tags) that a note links to: not a vault file
        if data["kind"] == "attachment" and not include_attachments:
            continue
        if any(node == entry or (entry.endswith("/") and node.startswith(entry)) for entry in exclude):
            continue
        kept.add(node)
        nodes.append({
            "id": node,
            "label": (titles or {}).get(node, data["label"]),
            "kind": data["kind"],
            "folder": data["folder"],
            "tags": list(data["tags"]),
            "url": url_for(node) if data["kind"] != "unresolved" else None,
        })
    label_counts = Counter(node["label"].casefold() for node in nodes)
    for node in nodes:
        if node["kind"] != "unresolved" and label_counts[node["label"].casefold()] > 1:
            node["label"] = node["id"][:-3] if node["id"].lower().endswith(".md") else node["id"]
    links = []
    for source, target, kind in G.edges(keys=True):
        if source in kept and target in kept and source != target:
            links.append({"source": source, "target": target, "kind": kind})
    payload = {
        "options": {"colorBy": color_by, "localDepth": local_depth},
        "nodes": nodes,
        "links": links,
    }
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def local_graph_html(path: str, depth: int) -> str:
    return (
        f'<div class="kb-graph kb-graph-local" data-kb-node="{escape_text(path)}" '
        f'data-kb-depth="{int(depth)}"></div>'
    )


_BLOCK_ID_AT_END = re.compile(r"(?:^|\s)\^[A-Za-z0-9-]+$")


def _context_line(note: Note, line_number: int) -> str:
    """Return one line of ``note`` as plain text, links shown by their display text."""
    starts = [0]
    text = note.text
    position = 0
    for _ in range(line_number - 1):
        position = text.find("\n", position)
        if position < 0:
            return ""
        position += 1
        starts.append(position)
    end = text.find("\n", position)
    end = len(text) if end < 0 else end
    pieces = []
    cursor = position
    for link in note.links:
        if link.line == line_number and position <= link.start and link.end <= end:
            if link.start < cursor:
                continue
            pieces.append(text[cursor:link.start])
            pieces.append(link.display or link.target_text or " > ".join(link.heading or []))
            cursor = link.end
    pieces.append(text[cursor:end])
    context = "".join(pieces).strip().lstrip(">#-*+ \t").strip()
    context = _BLOCK_ID_AT_END.sub("", context)
    return context if len(context) <= 240 else context[:237] + "..."


def backlinks_html(
    G: nx.MultiDiGraph, vault: Vault, path: str, url_for: Callable[[str], str | None],
    title: str,
) -> str:
    """Return the backlinks section of the page of ``path``: each linking note once, with the
    body lines that link here (the front-matter line only when the body has no link)."""
    items = []
    if path in G:
        lines_by_source: dict[str, set[int]] = {}
        for source, _target, data in G.in_edges(path, data=True):
            if source != path and source in vault.notes:
                lines_by_source.setdefault(source, set()).update(data["lines"])
        for source in sorted(lines_by_source):
            note = vault.notes[source]
            all_lines = lines_by_source[source]
            lines = {line for line in all_lines if line >= note.body_line} or all_lines
            url = url_for(source)
            name = escape_text(str(note.frontmatter.get("title") or note.name))
            anchor = f'<a class="kb-backlink" href="{escape_text(url)}">{name}</a>' if url else name
            contexts = "".join(
                f'<li class="kb-context"><span class="kb-line">{line}</span> '
                f"{inline_html(_context_line(note, line))}</li>"
                for line in sorted(lines)
            )
            items.append(f"<li>{anchor}<ul>{contexts}</ul></li>")
    body = f"<ul>{''.join(items)}</ul>" if items else '<p class="kb-none">No notes link here yet.</p>'
    return (
        # Left out of the search index: each context line is text of another page, which
        # search already finds there.
        f'<section class="kb-backlinks" data-search-exclude>'
        f'<h2 id="kb-backlinks" data-search-exclude>{escape_text(title)}</h2>'
        f"{body}</section>"
    )
