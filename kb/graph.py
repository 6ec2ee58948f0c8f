"""The topic graph of a vault: notes, attachments and unresolved targets, joined by typed edges.

Edges point from the note that writes a link to the note it names, with ``kind`` one of
``link``, ``embed``, ``requires`` or ``property``. A front-matter ``requires:`` list is an
explicit prerequisite; an ordinary link or embed counts as a weaker dependency. A link in any
other front-matter property (``answers:``, ``related:``...) has kind ``property``. The graph
is a :class:`networkx.MultiDiGraph` with one edge per (source, target, kind), carrying how
often and on which lines it is written.

Dependency rules, used by the tree and the learning order of a topic:

- ``requires:`` links are strong dependencies, body links and embeds weak ones.
- Property links other than ``requires:`` are metadata, never dependencies.
- An answer note's link to a note its ``answers:`` property names points back to the
  question, so it is not a dependency either (unless ``requires:`` names that note too).
- Unresolved targets are never part of a learning order or a tree. They are listed apart as
  missing notes.
- The topic comes last in its learning order (first with ``--reverse``): edges into the topic
  are removed before sorting and reported as cut.

Caveats: self links are kept as self-loops in the graph but ignored by the ordering
functions, and cycles among prerequisites are broken deterministically (by an edge whose
removal keeps every prerequisite reachable, weak edges first, then in alphabetical order) and
reported, never silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from kb.vault import Vault

__all__ = [
    "DependencyTree",
    "TopicDependencies",
    "build_graph",
    "connection_path",
    "dependency_graph",
    "dependency_tree",
    "display_names",
    "is_dependency",
    "learning_order",
    "summary",
    "topic_dependencies",
    "unresolved_id",
]

STRONG = "requires"
PROPERTY = "property"
"""Edge kind of a link in a front-matter property other than ``requires:``."""


def unresolved_id(would_create: str) -> str:
    """Node id of an unresolved target (kept apart from real paths)."""
    return f"unresolved:{would_create}"


def build_graph(vault: Vault, include_unresolved: bool = True) -> nx.MultiDiGraph:
    """Build the topic graph of ``vault``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "A.md").write_text("---\\nrequires: ['[[B]]']\\n---\\nSee [[C]].")
    >>> _ = (folder / "B.md").write_text("")
    >>> G = build_graph(Vault.load(folder))
    >>> sorted((u, v, k) for u, v, k in G.edges(keys=True))
    [('A.md', 'B.md', 'requires'), ('A.md', 'unresolved:C.md', 'link')]
    """
    G = nx.MultiDiGraph()
    for path in sorted(vault.files):
        note = vault.notes.get(path)
        if note is not None:
            answers = sorted({
                link.target for link in note.links
                if link.syntax == "property" and link.property == "answers" and link.target
            })
            G.add_node(
                path, kind="note", label=note.name, folder=note.folder,
                tags=note.tag_names, aliases=note.aliases, unresolved=False, answers=answers,
            )
        elif path.lower().endswith(".md"):
            continue  # an unreadable note: reported at load time, not a node
        else:
            G.add_node(
                path, kind="attachment", label=path.rsplit("/", 1)[-1],
                folder=path.rsplit("/", 1)[0] if "/" in path else "", tags=[], aliases=[],
                unresolved=False,
            )

    for link in vault.links:
        if link.target is not None:
            target = link.target
        elif link.would_create is not None and include_unresolved:
            target = unresolved_id(link.would_create)
            if target not in G:
                G.add_node(
                    target, kind="unresolved", label=link.target_text.rsplit("/", 1)[-1],
                    folder="", tags=[], aliases=[], unresolved=True,
                )
        else:
            continue
        if link.syntax == "property":
            kind = STRONG if link.property == "requires" else PROPERTY
        else:
            kind = link.kind
        if G.has_edge(link.source, target, kind):
            data = G.edges[link.source, target, kind]
            data["count"] += 1
            data["lines"].append(link.line)
        else:
            G.add_edge(link.source, target, key=kind, kind=kind, count=1, lines=[link.line])
    return G


def is_dependency(G: nx.MultiDiGraph, u: str, v: str, kind: str, strong_only: bool = False) -> bool:
    """Return whether the edge ``(u, v, kind)`` of ``G`` makes ``u`` depend on ``v``.

    See the module docstring for the rules: property links are metadata, and an answer
    note's plain link back to the note holding its question is not a dependency.
    """
    if u == v or kind == PROPERTY:
        return False
    if kind == STRONG:
        return True
    if strong_only:
        return False
    return v not in G.nodes[u].get("answers", ())


def dependency_graph(G: nx.MultiDiGraph, strong_only: bool = False) -> nx.DiGraph:
    """Collapse ``G`` to "u depends on v" edges between notes, with ``strength`` strong/weak."""
    D = nx.DiGraph()
    D.add_nodes_from(
        (node, {"unresolved": data["unresolved"]})
        for node, data in G.nodes(data=True) if data["kind"] != "attachment"
    )
    for u, v, kind in G.edges(keys=True):
        if v not in D or not is_dependency(G, u, v, kind, strong_only):
            continue
        strength = "strong" if kind == STRONG else "weak"
        if not D.has_edge(u, v) or strength == "strong":
            D.add_edge(u, v, strength=strength)
    return D


@dataclass
class TopicDependencies:
    """What a topic depends on, after the topic rules of the module docstring are applied."""

    graph: nx.DiGraph
    """Dependencies reachable from the topic: no unresolved nodes, self-loops or edges into it."""
    cut: list[tuple[str, str]]
    """Edges into the topic that were removed, sorted."""
    missing: list[str]
    """Unresolved targets reachable from the topic, sorted."""


def topic_dependencies(D: nx.DiGraph, topic: str) -> TopicDependencies:
    """Restrict the dependency graph ``D`` to what ``topic`` depends on, with the topic rules."""
    reachable = nx.descendants(D, topic) | {topic}
    missing = sorted(node for node in reachable if D.nodes[node].get("unresolved", False))
    H = nx.DiGraph(D.subgraph(reachable - set(missing)))
    H.remove_edges_from(list(nx.selfloop_edges(H)))
    cut = sorted(H.in_edges(topic))
    H.remove_edges_from(cut)
    # Removing unresolved nodes and edges into the topic can leave nodes it no longer reaches.
    H.remove_nodes_from(set(H) - nx.descendants(H, topic) - {topic})
    return TopicDependencies(H, cut, missing)


@dataclass
class DependencyTree:
    node: str
    strength: str | None = None
    """How the parent depends on this node: ``strong`` (requires) or ``weak`` (a link)."""
    repeat: bool = False
    """Shown earlier in the tree; its subtree is not repeated."""
    cycle: bool = False
    """Closes a cycle back to one of its ancestors."""
    children: list["DependencyTree"] = field(default_factory=list)


def dependency_tree(D: nx.DiGraph, topic: str, depth: int | None = None) -> DependencyTree:
    """Expand what ``topic`` depends on, each node once, cycles marked where they close.

    Nodes are expanded depth-first in the order they are printed, so a node marked ``repeat``
    always has its subtree earlier in the output. A node cut off by ``depth`` is not counted
    as expanded, so a shallower occurrence later in the tree still shows its subtree.
    Works with an explicit stack, so a 10,000-note chain cannot overflow Python's recursion.
    """

    def successors(node: str) -> list[str]:
        return sorted(
            D.successors(node),
            key=lambda child: (D.edges[node, child]["strength"] != "strong", child),
        )

    root = DependencyTree(topic)
    expanded = {topic}
    ancestors = {topic}
    # Each stack entry: (tree node, iterator over its remaining children, its depth).
    stack = [(root, iter(successors(topic)), 0)]
    while stack:
        tree, children, level = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            ancestors.discard(tree.node)
            continue
        strength = D.edges[tree.node, child]["strength"]
        if child in ancestors:
            tree.children.append(DependencyTree(child, strength, cycle=True))
        elif child in expanded:
            tree.children.append(DependencyTree(child, strength, repeat=True))
        else:
            subtree = DependencyTree(child, strength)
            tree.children.append(subtree)
            if depth is None or level + 1 < depth:
                expanded.add(child)
                ancestors.add(child)
                stack.append((subtree, iter(successors(child)), level + 1))
    return root


def learning_order(D: nx.DiGraph, topic: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Return the prerequisites of ``topic`` in a learning order, and the edges cut to get it.

    Prerequisites come before what needs them and ``topic`` comes last: edges into it are cut
    first. Unresolved targets are left out (see :func:`topic_dependencies`). Ties are broken
    alphabetically, so the order is deterministic. Cycles are found one at a time, and each
    loses one edge whose removal keeps every prerequisite reachable from the topic, so the
    order lists every note of the dependency tree: the alphabetically last such weak edge,
    else the alphabetically last such strong edge. Every cycle has such an edge (one that a
    depth-first search from the topic meets as a back edge). NOTE: this need not cut the
    fewest edges.
    """
    dependencies = topic_dependencies(D, topic)
    H = dependencies.graph
    cut = list(dependencies.cut)
    while True:
        try:
            cycle = nx.find_cycle(H, source=sorted(H.nodes))
        except nx.NetworkXNoCycle:
            break
        edges = [(u, v) for u, v, *_ in cycle]
        weak = sorted(edge for edge in edges if H.edges[edge]["strength"] == "weak")
        strong = sorted(edge for edge in edges if H.edges[edge]["strength"] != "weak")
        for edge in [*reversed(weak), *reversed(strong)]:
            data = H.edges[edge]
            H.remove_edge(*edge)
            if len(nx.descendants(H, topic)) + 1 == len(H):
                cut.append(edge)
                break
            H.add_edge(*edge, **data)  # the cut would strand a prerequisite: try the next
        else:
            raise AssertionError(f"no edge of the cycle {edges} can be cut")
    # Edges point from a note to its prerequisite, so reverse them for "prerequisites first".
    order = list(nx.lexicographical_topological_sort(H.reverse(copy=False), key=str))
    return order, cut


def connection_path(G: nx.MultiDiGraph, a: str, b: str) -> list[tuple[str, str, str]]:
    """Return the shortest chain of edges joining ``a`` and ``b``, in either direction.

    Among the chains with the fewest edges, the one with the fewest steps against the link
    direction wins, so a chain that only follows links is shown whenever one of that length
    exists. A longer chain is never preferred for its direction.

    Each step is ``(node, kind, direction)`` where direction is ``"->"`` when the link is
    written from the previous node to this one and ``"<-"`` otherwise; the first step has
    kind and direction ``""``. Raises :class:`networkx.NetworkXNoPath` when none exists.
    """
    # Every step costs `step`, and a step against the link direction costs 1 more. A chain
    # has at most len(G) - 1 steps, so these extra costs sum to less than one `step`, and no
    # longer chain can cost less than a shorter one.
    step = len(G) + 1
    U = nx.DiGraph()
    U.add_nodes_from(G.nodes)
    for u, v in G.edges():
        if u == v:
            continue
        U.add_edge(u, v, weight=step)
        if not G.has_edge(v, u):
            U.add_edge(v, u, weight=step + 1)
    nodes = nx.dijkstra_path(U, a, b)
    steps = [(a, "", "")]
    for previous, node in zip(nodes, nodes[1:]):
        if G.has_edge(previous, node):
            kinds = sorted(G[previous][node])
            steps.append((node, kinds[0], "->"))
        else:
            kinds = sorted(G[node][previous])
            steps.append((node, kinds[0], "<-"))
    return steps


def summary(G: nx.MultiDiGraph) -> dict[str, object]:
    """Count notes, attachments, links, unresolved targets, orphans and components."""
    notes = [node for node, data in G.nodes(data=True) if data["kind"] == "note"]
    unresolved = [node for node, data in G.nodes(data=True) if data["kind"] == "unresolved"]
    orphans = sorted(
        node for node in notes
        if all(u == v for u, v in list(G.in_edges(node)) + list(G.out_edges(node)))
    )
    note_graph = G.subgraph(notes)
    components = nx.number_weakly_connected_components(note_graph) if notes else 0

    D = dependency_graph(G, strong_only=True)
    D.remove_nodes_from([node for node in unresolved if node in D])
    D.remove_edges_from(list(nx.selfloop_edges(D)))
    cut = _break_cycles(D)
    chain = nx.dag_longest_path(D, default_weight=1) if D.number_of_edges() else []
    return {
        "notes": len(notes),
        "attachments": sum(1 for _n, data in G.nodes(data=True) if data["kind"] == "attachment"),
        "links": sum(data["count"] for *_e, data in G.edges(data=True)),
        "unresolved_targets": len(unresolved),
        "unresolved_links": sum(
            data["count"] for _u, v, data in G.edges(data=True) if G.nodes[v]["unresolved"]
        ),
        "orphans": orphans,
        "components": components,
        "longest_prerequisite_chain": list(reversed(chain)),
        "requires_cycles_cut": cut,
    }


def _break_cycles(D: nx.DiGraph) -> list[tuple[str, str]]:
    cut = []
    while True:
        try:
            cycle = nx.find_cycle(D)
        except nx.NetworkXNoCycle:
            return cut
        edge = sorted((u, v) for u, v, *_ in cycle)[-1]
        D.remove_edge(*edge)
        cut.append(edge)


def requires_cycles(G: nx.MultiDiGraph) -> list[list[str]]:
    """Return each cycle of ``requires`` edges once, as a list of notes."""
    D = dependency_graph(G, strong_only=True)
    D.remove_edges_from(list(nx.selfloop_edges(D)))
    cycles = []
    for component in nx.strongly_connected_components(D):
        if len(component) > 1:
            cycles.append(sorted(component))
    for u, v, kind in G.edges(keys=True):
        if u == v and kind == STRONG:
            cycles.append([u])
    return sorted(cycles)


def display_names(G: nx.MultiDiGraph) -> dict[str, str]:
    """Map each node to a short name for people: the note name, plus its folder when needed.

    A note or attachment shows as its label (``Attention``, ``plot.png``) unless another node
    has the same label ignoring case, in which case the vault path without ``.md`` tells them
    apart (``week1/Summary``). Unresolved targets end in `` (unresolved)``.
    """
    counts: dict[str, int] = {}
    for _node, data in G.nodes(data=True):
        if not data["unresolved"]:
            counts[data["label"].casefold()] = counts.get(data["label"].casefold(), 0) + 1

    names = {}
    for node, data in G.nodes(data=True):
        if data["unresolved"]:
            names[node] = f"{data['label']} (unresolved)"
        elif counts[data["label"].casefold()] > 1 and data["kind"] == "note":
            names[node] = node[:-3] if node.lower().endswith(".md") else node
        elif counts[data["label"].casefold()] > 1:
            names[node] = node
        else:
            names[node] = data["label"]
    return names


def nodes_with_label(G: nx.MultiDiGraph, nodes: Iterable[str]) -> list[tuple[str, str]]:
    return [(node, G.nodes[node]["label"]) for node in nodes]
