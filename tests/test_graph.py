"""Tests of the topic graph: edges, dependency tree, learning order, paths and summary."""

from __future__ import annotations

import doctest
from pathlib import Path

import networkx as nx
import pytest

import kb.graph
from kb.graph import (
    build_graph,
    connection_path,
    dependency_graph,
    dependency_tree,
    display_names,
    learning_order,
    requires_cycles,
    summary,
    topic_dependencies,
)
from kb.vault import Vault

NOTES = {
    "Transformer.md": "---\nrequires: ['[[Attention]]', '[[Embeddings]]']\n---\n"
                      "Uses [[Softmax]] and [[Missing Topic]]. ![[diagram.png]]\n",
    "Attention.md": "---\naliases: [Self-Attention]\nrequires: ['[[Softmax]]', '[[Linear Algebra]]']\n---\n",
    "Softmax.md": "See [[Linear Algebra]] and [[#Definition]].\n## Definition\n",
    "Embeddings.md": "---\nrequires: ['[[Linear Algebra]]']\n---\n",
    "Linear Algebra.md": "# Vectors\n",
    "Cycle A.md": "---\nrequires: ['[[Cycle B]]']\n---\n",
    "Cycle B.md": "---\nrequires: ['[[Cycle A]]']\n---\nAlso [[Cycle C]].\n",
    "Cycle C.md": "[[Cycle A]]\n",
    "week1/Summary.md": "[[Transformer]] [[Transformer]]\n",
    "week2/Summary.md": "[[Attention]]\n",
    "Lonely.md": "No links here.\n",
}


def write_vault(root: Path, notes: dict[str, str] = NOTES) -> Vault:
    for path, text in notes.items():
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    (root / "diagram.png").write_bytes(b"\x89PNG")
    return Vault.load(root)


@pytest.fixture
def graph(tmp_path) -> nx.MultiDiGraph:
    return build_graph(write_vault(tmp_path))


def test_graph_doctests():
    result = doctest.testmod(kb.graph)
    assert result.attempted > 0
    assert result.failed == 0


def test_edges_typed_and_counted(graph):
    assert graph.edges["Transformer.md", "Attention.md", "requires"]["lines"] == [2]
    assert graph.edges["Transformer.md", "Softmax.md", "link"]["count"] == 1
    assert graph.edges["Transformer.md", "diagram.png", "embed"]["count"] == 1
    assert graph.edges["week1/Summary.md", "Transformer.md", "link"]["count"] == 2
    assert graph.has_edge("Softmax.md", "Softmax.md", "link")  # [[#Definition]] is a self-loop


def test_node_kinds(graph):
    kinds = nx.get_node_attributes(graph, "kind")
    assert kinds["diagram.png"] == "attachment"
    assert kinds["unresolved:Missing Topic.md"] == "unresolved"
    assert kinds["Attention.md"] == "note"
    assert graph.nodes["Attention.md"]["aliases"] == ["Self-Attention"]


def test_display_names_folder_only_when_shared(graph):
    names = display_names(graph)
    assert names["week1/Summary.md"] == "week1/Summary"
    assert names["week2/Summary.md"] == "week2/Summary"
    assert names["Linear Algebra.md"] == "Linear Algebra"
    assert names["diagram.png"] == "diagram.png"
    assert names["unresolved:Missing Topic.md"] == "Missing Topic (unresolved)"


def test_dependency_graph_strength(graph):
    D = dependency_graph(graph)
    assert D.edges["Transformer.md", "Attention.md"]["strength"] == "strong"
    assert D.edges["Transformer.md", "Softmax.md"]["strength"] == "weak"
    assert "diagram.png" not in D
    assert not D.has_edge("Softmax.md", "Softmax.md")
    strong = dependency_graph(graph, strong_only=True)
    assert not strong.has_edge("Transformer.md", "Softmax.md")


def tree_nodes(tree) -> list[tuple[str, bool, bool]]:
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        found.append((node.node, node.repeat, node.cycle))
        stack.extend(reversed(node.children))
    return found


def test_tree_each_node_expanded_once(graph):
    tree = dependency_tree(dependency_graph(graph), "Transformer.md")
    expanded = [node for node, repeat, cycle in tree_nodes(tree) if not repeat and not cycle]
    assert sorted(expanded) == sorted(set(expanded))
    assert set(expanded) == {
        "Transformer.md", "Attention.md", "Embeddings.md", "Softmax.md", "Linear Algebra.md",
        "unresolved:Missing Topic.md",
    }
    assert [child.node for child in tree.children] == [
        "Attention.md", "Embeddings.md", "Softmax.md", "unresolved:Missing Topic.md",
    ]


def test_tree_cycle_marked_once(graph):
    tree = dependency_tree(dependency_graph(graph), "Cycle A.md")
    got = tree_nodes(tree)
    assert got[0] == ("Cycle A.md", False, False)
    assert ("Cycle A.md", False, True) in got
    assert sum(1 for node, repeat, cycle in got if node == "Cycle A.md" and not cycle) == 1


def test_tree_depth_limit(graph):
    tree = dependency_tree(dependency_graph(graph), "Transformer.md", depth=1)
    assert all(child.children == [] for child in tree.children)


def test_tree_long_chain_no_recursion_error(tmp_path):
    notes = {f"N{i}.md": f"[[N{i + 1}]]" for i in range(3000)}
    G = build_graph(write_vault(tmp_path, notes))
    tree = dependency_tree(dependency_graph(G), "N0.md")
    assert len(tree_nodes(tree)) == 3001


def assert_topological(order: list[str], D: nx.DiGraph, cut: list[tuple[str, str]]) -> None:
    position = {node: index for index, node in enumerate(order)}
    for u, v in D.subgraph(order).edges:
        if u != v and (u, v) not in cut:
            assert position[v] < position[u], f"{v} must come before {u}"


def test_learning_order_valid(graph):
    D = dependency_graph(graph)
    order, cut = learning_order(D, "Transformer.md")
    assert order[-1] == "Transformer.md"
    assert cut == []
    assert set(order) == {
        "Transformer.md", "Attention.md", "Embeddings.md", "Softmax.md", "Linear Algebra.md",
    }
    assert_topological(order, D, cut)


def test_learning_order_leaves_out_unresolved(graph):
    D = dependency_graph(graph)
    order, _ = learning_order(D, "Transformer.md")
    assert "unresolved:Missing Topic.md" not in order
    assert topic_dependencies(D, "Transformer.md").missing == ["unresolved:Missing Topic.md"]


def test_learning_order_cycle_cut_deterministic(graph):
    D = dependency_graph(graph)
    first = learning_order(D, "Cycle A.md")
    assert first == learning_order(D, "Cycle A.md")
    order, cut = first
    # The first cycle found, A <-> B, has only strong edges, so its alphabetically last edge
    # goes. The cycle A -> B -> C -> A remains and loses its weak edge C -> A.
    assert cut == [("Cycle B.md", "Cycle A.md"), ("Cycle C.md", "Cycle A.md")]
    assert_topological(order, D, cut)


def test_requires_cycles_reported(graph):
    assert requires_cycles(graph) == [["Cycle A.md", "Cycle B.md"]]


def test_connection_path_both_directions(graph):
    steps = connection_path(graph, "week2/Summary.md", "Embeddings.md")
    assert steps[0] == ("week2/Summary.md", "", "")
    assert steps[-1][0] == "Embeddings.md"
    # Two shortest chains exist, for example Summary -> Attention <- Transformer -> Embeddings.
    assert len(steps) == 4
    for (previous, _, _), (node, kind, direction) in zip(steps, steps[1:]):
        if direction == "->":
            assert graph.has_edge(previous, node, kind)
        else:
            assert graph.has_edge(node, previous, kind)


# Links as (source, target) in the order the graph gets them, and the path expected from A to B
# as "A", then "->X" (a link from the previous note to X) or "<-X" (a link from X back to it).
CONNECTION_PATHS = [
    ("forward beats mixed of equal length",
     [("P", "A"), ("P", "B"), ("A", "Q"), ("Q", "B")], ["A", "->Q", "->B"]),
    ("fewest backward steps",
     [("P1", "A"), ("P2", "P1"), ("P2", "B"), ("Q1", "A"), ("Q1", "Q2"), ("Q2", "B")],
     ["A", "<-Q1", "->Q2", "->B"]),
    ("shorter beats forward",
     [("A", "Q1"), ("Q1", "Q2"), ("Q2", "B"), ("P", "A"), ("P", "B")], ["A", "<-P", "->B"]),
    ("links both ways", [("B", "A"), ("A", "B")], ["A", "->B"]),
    ("only backward", [("B", "A")], ["A", "<-B"]),
]


@pytest.mark.parametrize("links, expected", [case[1:] for case in CONNECTION_PATHS],
                         ids=[case[0] for case in CONNECTION_PATHS])
def test_connection_path_prefers_link_direction(links, expected):
    G = nx.MultiDiGraph()
    for source, target in links:
        G.add_edge(source, target, key="link")
    steps = connection_path(G, "A", "B")
    assert [node if not direction else direction + node for node, _kind, direction in steps] == expected


def test_connection_path_none(graph):
    with pytest.raises(nx.NetworkXNoPath):
        connection_path(graph, "Lonely.md", "Transformer.md")


def test_summary_counts(graph):
    facts = summary(graph)
    assert facts["notes"] == 11
    assert facts["attachments"] == 1
    assert facts["links"] == 17
    assert facts["unresolved_targets"] == 1
    assert facts["unresolved_links"] == 1
    assert facts["orphans"] == ["Lonely.md"]
    assert facts["components"] == 3
    chain = facts["longest_prerequisite_chain"]
    assert len(chain) == 3
    assert chain[1:] == ["Attention.md", "Transformer.md"]
    for prerequisite, note in zip(chain, chain[1:]):
        assert graph.has_edge(note, prerequisite, "requires")
    assert facts["requires_cycles_cut"] == [("Cycle B.md", "Cycle A.md")]


# A person's hub note links each answer, and each answer links back to its question there.
HUB_NOTES = {
    "Hub.md": "How does cold diffusion work? [[Cold|answer]] ^q-cold\n\n"
              "How does DDPM work? [[DDPM|answer]] ^q-ddpm\n\n"
              "How does a U-Net work? [[UNet|answer]] ^q-unet\n",
    "Cold.md": "---\nrequires: ['[[DDPM]]']\nanswers: ['[[Hub#^q-cold]]']\nrelated: ['[[Extra]]']\n---\n"
               "Asked in [[Hub#^q-cold]]. Compare [[Blur]] and [[Not written]].\n",
    "DDPM.md": "---\nanswers: ['[[Hub#^q-ddpm]]']\n---\nAsked in [[Hub#^q-ddpm]]. Uses [[UNet]].\n",
    "UNet.md": "---\nanswers: ['[[Hub#^q-unet]]']\n---\nAsked in [[Hub#^q-unet]]. See [[Cold]].\n",
    "Blur.md": "Blurring.\n",
    "Extra.md": "Extra.\n",
}


@pytest.fixture
def hub_graph(tmp_path) -> nx.MultiDiGraph:
    return build_graph(write_vault(tmp_path, HUB_NOTES))


def test_property_links_are_not_dependencies(hub_graph):
    assert hub_graph.has_edge("Cold.md", "Extra.md", "property")
    assert hub_graph.has_edge("Cold.md", "Hub.md", "property")
    D = dependency_graph(hub_graph)
    assert not D.has_edge("Cold.md", "Extra.md")


def test_answer_back_link_not_a_dependency(hub_graph):
    assert hub_graph.has_edge("Cold.md", "Hub.md", "link")
    D = dependency_graph(hub_graph)
    assert not D.has_edge("Cold.md", "Hub.md")
    assert not D.has_edge("DDPM.md", "Hub.md")
    assert D.edges["Hub.md", "Cold.md"]["strength"] == "weak"


def test_answer_back_link_kept_when_required(tmp_path):
    notes = {
        "Hub.md": "Why? [[A|answer]] ^q-a\n",
        "A.md": "---\nanswers: ['[[Hub#^q-a]]']\nrequires: ['[[Hub]]']\n---\n[[Hub]]\n",
    }
    D = dependency_graph(build_graph(write_vault(tmp_path, notes)))
    assert D.edges["A.md", "Hub.md"]["strength"] == "strong"


def test_learning_order_topic_last_in_hub_vault(hub_graph):
    D = dependency_graph(hub_graph)
    order, cut = learning_order(D, "Cold.md")
    assert order == ["Blur.md", "UNet.md", "DDPM.md", "Cold.md"]
    assert cut == [("UNet.md", "Cold.md")]
    assert "Hub.md" not in order


def test_learning_order_reverse_topic_first(hub_graph):
    D = dependency_graph(hub_graph).reverse(copy=True)
    order, cut = learning_order(D, "DDPM.md")
    order.reverse()
    assert order[0] == "DDPM.md"
    assert set(order) == {"DDPM.md", "Cold.md", "Hub.md", "UNet.md"}
    # Reversed, the edge UNet -> DDPM stands for DDPM's own link to UNet, an edge into the topic.
    assert cut == [("UNet.md", "DDPM.md")]


def test_learning_order_keeps_every_prerequisite(tmp_path):
    notes = {
        "Topic.md": "---\nrequires: ['[[X]]']\n---\n",
        "X.md": "[[Y]]\n",
        "Y.md": "---\nrequires: ['[[X]]']\n---\n[[Z]]\n",
        "Z.md": "",
    }
    D = dependency_graph(build_graph(write_vault(tmp_path, notes)))
    order, cut = learning_order(D, "Topic.md")
    # X and Y form a cycle. Cutting X's weak link to Y would strand Y and Z, which the topic
    # reaches only through it, so Y's requirement of X is cut instead.
    assert cut == [("Y.md", "X.md")]
    assert order == ["Z.md", "Y.md", "X.md", "Topic.md"]


def test_topic_dependencies_cut_and_missing(hub_graph):
    D = dependency_graph(hub_graph)
    found = topic_dependencies(D, "Cold.md")
    assert found.cut == [("UNet.md", "Cold.md")]
    assert found.missing == ["unresolved:Not written.md"]
    assert "unresolved:Not written.md" not in found.graph
    assert found.graph.in_degree("Cold.md") == 0


@pytest.mark.parametrize("seed", range(8))
def test_learning_order_lists_every_reachable_note(seed):
    import random

    rng = random.Random(seed)
    D = nx.DiGraph()
    names = [f"N{i}.md" for i in range(12)]
    D.add_nodes_from(names)
    for u in names:
        for v in rng.sample(names, 3):
            if u != v:
                D.add_edge(u, v, strength=rng.choice(["weak", "strong"]))
    order, cut = learning_order(D, "N0.md")
    assert set(order) == nx.descendants(D, "N0.md") | {"N0.md"}
    assert order[-1] == "N0.md"
    position = {node: index for index, node in enumerate(order)}
    kept_edges = [edge for edge in D.subgraph(order).edges if edge not in set(cut)]
    assert all(position[v] < position[u] for u, v in kept_edges)
