"""Tests of the ``kb`` command line: graph, links, tags and check, on small and real vaults."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import networkx as nx
import pytest

from kb.cli import main
from kb.graph import build_graph
from kb.vault import Vault
from test_graph import HUB_NOTES, NOTES, write_vault

REPOSITORY = Path(__file__).resolve().parent.parent
ML_NOTES = REPOSITORY.parent / "shared" / "vaults" / "ml-notes"
CHECK_LINE = re.compile(r"^(?P<path>[^\n]+?)(?::(?P<line>\d+))?: (?P<severity>error|warning|info): \S")


@pytest.fixture
def vault(tmp_path) -> Path:
    write_vault(tmp_path, NOTES)
    return tmp_path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# kb graph TOPIC ---------------------------------------------------------------------------------


def test_graph_tree_text(vault, capsys):
    code, out, err = run(capsys, "graph", "Transformer", "--vault", str(vault))
    assert code == 0
    assert out.splitlines() == [
        "Transformer",
        "|-- Attention",
        "|   |-- Linear Algebra",
        "|   `-- Softmax",
        "|       `-- Linear Algebra  (link, see above)",
        "|-- Embeddings",
        "|   `-- Linear Algebra  (see above)",
        "`-- Softmax  (link, see above)",
    ]
    assert err.splitlines() == [
        "missing notes (linked but not written, left out above):",
        "  Missing Topic",
    ]


def test_graph_tree_cuts_links_into_topic(vault, capsys):
    code, out, err = run(capsys, "graph", "Cycle A", "--vault", str(vault))
    assert code == 0
    assert out.splitlines() == [
        "Cycle A",
        "`-- Cycle B",
        "    `-- Cycle C  (link)",
    ]
    assert err.splitlines() == [
        "note: cycle broken by ignoring Cycle B -> Cycle A",
        "note: cycle broken by ignoring Cycle C -> Cycle A",
    ]


def test_graph_tree_repeat_marked(vault, capsys):
    _, out, _ = run(capsys, "graph", "Cycle B", "--vault", str(vault))
    assert out.splitlines() == [
        "Cycle B",
        "|-- Cycle A",
        "`-- Cycle C  (link)",
        "    `-- Cycle A  (link, see above)",
    ]


def test_graph_reverse(vault, capsys):
    code, out, _ = run(capsys, "graph", "Linear Algebra", "--reverse", "--strong", "--vault", str(vault))
    assert code == 0
    names = {line.split("-- ")[-1].split("  (")[0] for line in out.splitlines()[1:]}
    assert names == {"Attention", "Embeddings", "Transformer", "week2/Summary"} - {"week2/Summary"}


def test_graph_reverse_shows_folder_for_duplicates(vault, capsys):
    _, out, _ = run(capsys, "graph", "Transformer", "--reverse", "--vault", str(vault))
    assert out.splitlines() == ["Transformer", "`-- week1/Summary  (link)"]


def test_graph_depth(vault, capsys):
    _, out, _ = run(capsys, "graph", "Transformer", "--depth", "1", "--vault", str(vault))
    assert out.splitlines() == [
        "Transformer",
        "|-- Attention",
        "|-- Embeddings",
        "`-- Softmax  (link)",
    ]


WHOLE_NUMBER_OPTIONS = [
    (["graph", "Transformer", "--depth"], "abc", "argument --depth"),
    (["graph", "Transformer", "--depth"], "0", "argument --depth"),
    (["graph", "Transformer", "--depth"], "-2", "argument --depth"),
    (["graph", "Transformer", "--depth"], "1.5", "argument --depth"),
    (["run", "--list", "-j"], "abc", "argument -j/--jobs"),
    (["run", "--list", "-j"], "0", "argument -j/--jobs"),
]


@pytest.mark.parametrize("command, value, option", WHOLE_NUMBER_OPTIONS,
                         ids=[f"{case[0][-1]} {case[1]}" for case in WHOLE_NUMBER_OPTIONS])
def test_whole_number_option_rejects(vault, capsys, command, value, option):
    with pytest.raises(SystemExit) as error:
        main([*command, value, "--vault", str(vault)])
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert f"{option}: expected a whole number of 1 or more, got '{value}'" in err
    assert "_positive_int" not in err


def test_graph_order_valid(vault, capsys):
    code, out, _ = run(capsys, "graph", "Transformer", "--order", "--format", "json", "--vault", str(vault))
    assert code == 0
    data = json.loads(out)
    order = data["order"]
    assert data["cycles_cut"] == []
    assert order[-1] == "Transformer.md"
    position = {node: index for index, node in enumerate(order)}
    for note, prerequisite in [
        ("Transformer.md", "Attention.md"), ("Transformer.md", "Embeddings.md"),
        ("Attention.md", "Softmax.md"), ("Attention.md", "Linear Algebra.md"),
        ("Softmax.md", "Linear Algebra.md"), ("Embeddings.md", "Linear Algebra.md"),
    ]:
        assert position[prerequisite] < position[note]


def test_graph_order_text_reports_cut(vault, capsys):
    code, out, err = run(capsys, "graph", "Cycle A", "--order", "--vault", str(vault))
    assert code == 0
    assert [line.split(". ", 1)[1] for line in out.splitlines()] == ["Cycle C", "Cycle B", "Cycle A"]
    assert err.splitlines() == [
        "note: cycle broken by ignoring Cycle B -> Cycle A",
        "note: cycle broken by ignoring Cycle C -> Cycle A",
    ]


def test_graph_order_lists_missing_notes(vault, capsys):
    code, out, err = run(capsys, "graph", "Transformer", "--order", "--vault", str(vault))
    assert code == 0
    assert "Missing Topic" not in out
    assert out.splitlines()[-1] == "  5. Transformer"
    assert err.splitlines() == [
        "missing notes (linked but not written, left out above):",
        "  Missing Topic",
    ]
    _, out, _ = run(capsys, "graph", "Transformer", "--order", "--format", "json", "--vault", str(vault))
    data = json.loads(out)
    assert data["missing_notes"] == ["unresolved:Missing Topic.md"]
    assert "unresolved:Missing Topic.md" not in data["order"]


def test_graph_order_hub_vault_topic_last(tmp_path, capsys):
    write_vault(tmp_path, HUB_NOTES)
    code, out, err = run(capsys, "graph", "Cold", "--order", "--vault", str(tmp_path))
    assert code == 0
    assert [line.split(". ", 1)[1] for line in out.splitlines()] == ["Blur", "UNet", "DDPM", "Cold"]
    assert "note: cycle broken by ignoring UNet -> Cold" in err.splitlines()


def test_graph_order_reverse_topic_first(tmp_path, capsys):
    write_vault(tmp_path, HUB_NOTES)
    _, out, err = run(capsys, "graph", "DDPM", "--order", "--reverse", "--vault", str(tmp_path))
    names = [line.split(". ", 1)[1] for line in out.splitlines()]
    assert names[0] == "DDPM"
    assert set(names) == {"DDPM", "Cold", "Hub", "UNet"}
    # The cut edge is shown as written: DDPM links to UNet.
    assert err.splitlines() == ["note: cycle broken by ignoring DDPM -> UNet"]


def test_graph_help_states_rules(capsys):
    with pytest.raises(SystemExit):
        main(["graph", "--help"])
    out = capsys.readouterr().out
    assert "metadata, not dependencies" in out
    assert "missing notes" in out
    assert "TOPIC comes last" in out
    assert "with the fewest links followed backwards" in " ".join(out.split())


def test_graph_path_text(vault, capsys):
    code, out, _ = run(capsys, "graph", "--path", "week1/Summary", "Linear Algebra", "--vault", str(vault))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "week1/Summary"
    assert lines[1] == "  --link--> Transformer"
    assert lines[-1].endswith(" Linear Algebra")


def test_graph_path_json_and_missing(vault, capsys):
    code, out, _ = run(capsys, "graph", "--path", "Lonely", "Transformer", "--vault", str(vault))
    assert code == 1
    assert "are not connected" in out
    code, out, _ = run(capsys, "graph", "--path", "Lonely", "Transformer", "--strong", "--vault", str(vault))
    assert code == 1
    assert "are not connected by requires: links" in out
    code, out, _ = run(capsys, "graph", "--path", "Attention", "Softmax", "--format", "json", "--vault", str(vault))
    assert code == 0
    assert json.loads(out) == [
        {"node": "Attention.md", "kind": "", "direction": ""},
        {"node": "Softmax.md", "kind": "requires", "direction": "->"},
    ]


PATH_CONFLICTS = [
    (["Transformer"], "TOPIC 'Transformer'"),
    (["--order"], "--order"),
    (["--reverse"], "--reverse"),
    (["--depth", "2"], "--depth"),
    (["Transformer", "--order"], "TOPIC 'Transformer', --order"),
]


@pytest.mark.parametrize("extra, named", PATH_CONFLICTS, ids=[case[1] for case in PATH_CONFLICTS])
def test_graph_path_rejects_topic_options(vault, capsys, extra, named):
    code, out, err = run(capsys, "graph", *extra, "--path", "Attention", "Softmax",
                         "--vault", str(vault))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"kb: error: --path A B cannot be combined with {named}; use --path alone to see how "
        "A connects to B, or drop --path",
    ]


def test_graph_summary(vault, capsys):
    code, out, _ = run(capsys, "graph", "--vault", str(vault))
    assert code == 0
    assert "notes:        11" in out
    assert "attachments:  1" in out
    assert "links:        17" in out
    assert "unresolved:   1 link to 1 missing note" in out
    assert "orphans:      1" in out
    assert "longest prerequisite chain: 3 notes" in out


@pytest.mark.parametrize("topic", ["self-attention", "SELF-ATTENTION", "attention", "Attention.md", "ATTENTION"])
def test_graph_topic_alias_and_case(vault, capsys, topic):
    code, out, _ = run(capsys, "graph", topic, "--depth", "1", "--vault", str(vault))
    assert code == 0
    assert out.splitlines()[0] == "Attention"


def test_graph_ambiguous_topic_named(vault, capsys):
    code, out, err = run(capsys, "graph", "summary", "--vault", str(vault))
    assert code == 0
    assert out.splitlines()[0] == "week1/Summary"
    assert err.splitlines()[:1] == [
        "kb: 'summary' is ambiguous: it matches 2 notes (week1/Summary.md, week2/Summary.md); "
        "kb uses 'week1/Summary.md'. Write the folder path to choose one",
    ]


def test_graph_folder_path_not_ambiguous(vault, capsys):
    _, out, err = run(capsys, "graph", "week2/Summary", "--vault", str(vault))
    assert out.splitlines()[0] == "week2/Summary"
    assert "ambiguous" not in err


def test_graph_topic_did_you_mean(vault, capsys):
    code, out, err = run(capsys, "graph", "Transfomer", "--vault", str(vault))
    assert code == 2
    assert out == ""
    assert err.startswith("kb: error: no note named 'Transfomer'; did you mean: Transformer")


# Export formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", [[], ["Transformer"]], ids=["vault", "topic"])
def test_format_json_parses(vault, capsys, topic):
    code, out, _ = run(capsys, "graph", *topic, "--format", "json", "--vault", str(vault))
    assert code == 0
    data = json.loads(out)
    if topic:
        assert data["node"] == "Transformer.md"
        assert [child["node"] for child in data["children"]][:2] == ["Attention.md", "Embeddings.md"]
    else:
        G = nx.node_link_graph(data, edges="links")
        assert G.number_of_nodes() == 13
        assert G.has_edge("Transformer.md", "Attention.md")


@pytest.mark.parametrize("topic", [[], ["Transformer"]], ids=["vault", "topic"])
def test_format_graphml_parses(vault, capsys, topic):
    code, out, _ = run(capsys, "graph", *topic, "--format", "graphml", "--vault", str(vault))
    assert code == 0
    G = nx.read_graphml(io.BytesIO(out.encode("utf-8")))
    assert G.has_edge("Transformer.md", "Attention.md")
    assert G.nodes["week1/Summary.md" if not topic else "Transformer.md"]["kind"] == "note"
    if not topic:
        assert G.number_of_nodes() == 13


@pytest.mark.parametrize("topic", [[], ["Transformer"]], ids=["vault", "topic"])
def test_format_dot(vault, capsys, topic):
    code, out, _ = run(capsys, "graph", *topic, "--format", "dot", "--vault", str(vault))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "digraph kb {"
    assert lines[-1] == "}"
    assert '  "Transformer.md" -> "Attention.md" [label="requires" style=bold];' in lines
    assert '  "Transformer.md" [label="Transformer"];' in lines
    for line in lines[1:-1]:
        assert re.fullmatch(r'  "(?:[^"\\]|\\.)*"( -> "(?:[^"\\]|\\.)*")? \[.*\];', line), line


def test_format_dot_labels_duplicates(vault, capsys):
    _, out, _ = run(capsys, "graph", "--format", "dot", "--vault", str(vault))
    assert '  "week1/Summary.md" [label="week1/Summary"];' in out.splitlines()


def test_format_mermaid(vault, capsys):
    code, out, _ = run(capsys, "graph", "--format", "mermaid", "--vault", str(vault))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "graph LR"
    ids = dict(re.fullmatch(r'  (n\d+)\["(.*)"\]', line).groups() for line in lines if "[" in line)
    edges = [line.split() for line in lines[1:] if "[" not in line]
    assert all(source in ids and target in ids for source, _arrow, target in edges)
    by_label = {label: node for node, label in ids.items()}
    assert [by_label["Transformer"], "==>", by_label["Attention"]] in edges


def test_format_mermaid_escapes_labels(tmp_path, capsys):
    # Mermaid renders labels as HTML and decodes its own codes such as #quot; and #35;, so
    # < > & " and # in a note name are written as codes.
    (tmp_path / "a<b>.md").write_text("[[Q & A]]\n", encoding="utf-8")
    (tmp_path / "Q & A.md").write_text("", encoding="utf-8")
    (tmp_path / 'Say "hi" #1;.md').write_text("", encoding="utf-8")
    (tmp_path / "x&lt;y.md").write_text("", encoding="utf-8")
    code, out, _ = run(capsys, "graph", "--format", "mermaid", "--vault", str(tmp_path))
    assert code == 0
    assert out.splitlines() == [
        "graph LR",
        '  n0["Q #amp; A"]',
        '  n1["Say #quot;hi#quot; #35;1;"]',
        '  n2["a#lt;b#gt;"]',
        '  n3["x#amp;lt;y"]',
        "  n2 --> n0",
    ]


def test_format_graphml_edge_ids_unique(vault, capsys):
    code, out, _ = run(capsys, "graph", "--format", "graphml", "--vault", str(vault))
    assert code == 0
    namespace = {"g": "http://graphml.graphdrawing.org/xmlns"}
    edges = ElementTree.fromstring(out).findall("g:graph/g:edge", namespace)
    ids = [edge.get("id") for edge in edges]
    assert len(ids) == len(set(ids)) == len(edges)
    G = nx.read_graphml(io.BytesIO(out.encode("utf-8")))
    kinds = sorted((u, v, data["kind"]) for u, v, data in G.edges(data=True))
    expected = sorted(build_graph(Vault.load(vault)).edges(keys=True))
    assert kinds == expected


def test_format_graphml_booleans_xml_schema(vault, capsys):
    code, out, _ = run(capsys, "graph", "--format", "graphml", "--vault", str(vault))
    assert code == 0
    namespace = {"g": "http://graphml.graphdrawing.org/xmlns"}
    root = ElementTree.fromstring(out)
    boolean_keys = {key.get("id") for key in root.findall("g:key", namespace) if key.get("attr.type") == "boolean"}
    values = {data.text for data in root.iter("{http://graphml.graphdrawing.org/xmlns}data") if data.get("key") in boolean_keys}
    assert values == {"true", "false"}
    G = nx.read_graphml(io.BytesIO(out.encode("utf-8")))
    assert G.nodes["unresolved:Missing Topic.md"]["unresolved"] is True
    assert G.nodes["Transformer.md"]["unresolved"] is False


def _dot_edges(out: str) -> set[tuple[str, str, str]]:
    pattern = re.compile(r'  "(.*)" -> "(.*)" \[label="(\w+)"')
    return {match.groups() for match in map(pattern.match, out.splitlines()) if match}


@pytest.mark.parametrize("topic", [[], ["Transformer"]], ids=["vault", "topic"])
def test_format_dot_strong_drops_links(vault, capsys, topic):
    code, out, _ = run(capsys, "graph", *topic, "--strong", "--format", "dot", "--vault", str(vault))
    assert code == 0
    edges = _dot_edges(out)
    assert ("Transformer.md", "Attention.md", "requires") in edges
    assert {kind for _u, _v, kind in edges} == {"requires"}


def test_format_mermaid_strong_drops_links(vault, capsys):
    _, out, _ = run(capsys, "graph", "Transformer", "--strong", "--format", "mermaid", "--vault", str(vault))
    arrows = [line.split()[1] for line in out.splitlines()[1:] if "[" not in line]
    assert arrows
    assert set(arrows) == {"==>"}


def test_format_dot_order(vault, capsys):
    code, out, _ = run(capsys, "graph", "Cycle A", "--order", "--format", "dot", "--vault", str(vault))
    assert code == 0
    assert out.splitlines()[0] == "digraph kb {"
    # The order cuts the edges back into Cycle A, so the drawing leaves them out too.
    assert _dot_edges(out) == {
        ("Cycle A.md", "Cycle B.md", "requires"), ("Cycle B.md", "Cycle C.md", "link"),
    }


def test_format_mermaid_order(vault, capsys):
    code, out, _ = run(capsys, "graph", "Transformer", "--order", "--format", "mermaid", "--vault", str(vault))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "graph LR"
    labels = {re.fullmatch(r'  n\d+\["(.*)"\]', line).group(1) for line in lines if "[" in line}
    assert labels == {"Transformer", "Attention", "Embeddings", "Softmax", "Linear Algebra"}


@pytest.mark.parametrize("fmt", ["dot", "mermaid", "graphml"])
def test_format_path_draws_path(vault, capsys, fmt):
    code, out, _ = run(capsys, "graph", "--path", "week2/Summary", "Embeddings", "--format", fmt,
                       "--vault", str(vault))
    assert code == 0
    if fmt == "dot":
        assert len(_dot_edges(out)) == 3
        assert '  "week2/Summary.md" [label="week2/Summary"];' in out.splitlines()
    elif fmt == "mermaid":
        assert out.splitlines()[0] == "graph LR"
        assert sum("[" not in line for line in out.splitlines()[1:]) == 3
    else:
        G = nx.read_graphml(io.BytesIO(out.encode("utf-8")))
        assert G.number_of_nodes() == 4
        assert G.number_of_edges() == 3


# links, tags, check ---------------------------------------------------------------------------


def test_links_table_and_unresolved(vault, capsys):
    code, out, _ = run(capsys, "links", "--unresolved", "--vault", str(vault))
    assert code == 0
    assert out.splitlines() == [
        "Transformer.md:4: [[Missing Topic]] -> (unresolved, would create Missing Topic.md)",
    ]


LINK_TARGETS = [
    ("resolved", "[[Home]]", "Other Note.md:1: [[Home]] -> Home.md"),
    ("unresolved", "[[Nowhere]]",
     "Other Note.md:1: [[Nowhere]] -> (unresolved, would create Nowhere.md)"),
    ("outside vault", "[back](../Home.md)",
     "Other Note.md:1: [back](../Home.md) -> (outside the vault, kb never follows it)"),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in LINK_TARGETS],
                         ids=[case[0] for case in LINK_TARGETS])
def test_links_table_target(tmp_path, capsys, text, expected):
    (tmp_path / "Home.md").write_text("# Home\n", encoding="utf-8")
    (tmp_path / "Other Note.md").write_text(text + "\n", encoding="utf-8")
    code, out, _ = run(capsys, "links", "--vault", str(tmp_path))
    assert code == 0
    assert out.splitlines() == [expected]
    assert "None" not in out


def test_tags_json(tmp_path, capsys):
    (tmp_path / "A.md").write_text("---\ntags: [ml]\n---\n#Deep #ml", encoding="utf-8")
    code, out, _ = run(capsys, "tags", "--format", "json", "--vault", str(tmp_path))
    assert code == 0
    assert json.loads(out) == {"A.md": ["ml", "deep"]}


def test_check_lines_and_exit(vault, capsys):
    code, out, err = run(capsys, "check", "--vault", str(vault))
    assert code == 1
    lines = out.splitlines()
    for line in lines:
        assert CHECK_LINE.match(line), line
    assert "Cycle A.md:2: error: prerequisite cycle: Cycle A.md -> Cycle B.md -> Cycle A.md" in out
    assert any(line.startswith("Transformer.md:4: warning: [[Missing Topic]]") for line in lines)
    assert "Lonely.md: info: no links to or from this note" in out
    assert re.fullmatch(r"\d+ errors?, \d+ warnings?, \d+ info", err.strip())
    severities = [CHECK_LINE.match(line)["severity"] for line in lines]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


def test_check_skips_pages_the_site_fills(tmp_path, capsys):
    (tmp_path / "questions.md").write_text("# Questions\n\n<!-- kb:questions -->\n", encoding="utf-8")
    (tmp_path / "Lonely.md").write_text("Alone.\n", encoding="utf-8")
    _, out, _ = run(capsys, "check", "--vault", str(tmp_path))
    assert "Lonely.md: info: no links to or from this note" in out
    assert "questions.md" not in out


def test_check_warnings_pass_unless_strict(tmp_path, capsys):
    (tmp_path / "A.md").write_text("[[Missing]]", encoding="utf-8")
    code, out, _ = run(capsys, "check", "--vault", str(tmp_path))
    assert code == 0
    assert out.splitlines()[0].startswith("A.md:1: warning: [[Missing]]")
    code, out, _ = run(capsys, "check", "--strict", "--vault", str(tmp_path))
    assert code == 1
    assert out.splitlines()[0].startswith("A.md:1: error: [[Missing]]")


DOT_FILE_LINKS = [
    ("dot note", "..md", "[[..md]]",
     "[[..md]]: kb skips files and folders whose name starts with a dot, so it cannot link to "
     "'..md'; rename '..md' so that it does not start with a dot, and fix the link"),
    ("hidden note", ".hidden.md", "[[.hidden]]",
     "[[.hidden]]: kb skips files and folders whose name starts with a dot, so it cannot link "
     "to '.hidden.md'; rename '.hidden.md' so that it does not start with a dot, and fix the link"),
    ("hidden folder", ".drafts/Idea.md", "[[.drafts/Idea]]",
     "[[.drafts/Idea]]: kb skips files and folders whose name starts with a dot, so it cannot "
     "link to '.drafts/Idea.md'; rename '.drafts' so that it does not start with a dot, and fix "
     "the link"),
    ("missing note", None, "[[Idea]]",
     "[[Idea]]: no note or file named 'Idea'; create 'Idea.md' or fix the link"),
]


@pytest.mark.parametrize("written, link, expected", [case[1:] for case in DOT_FILE_LINKS],
                         ids=[case[0] for case in DOT_FILE_LINKS])
def test_check_link_to_dot_file(tmp_path, capsys, written, link, expected):
    if written:
        (tmp_path / written).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / written).write_text("# Hidden\n", encoding="utf-8")
    (tmp_path / "A.md").write_text(f"See {link}.\n", encoding="utf-8")
    _, out, _ = run(capsys, "check", "--vault", str(tmp_path))
    assert f"A.md:1: warning: {expected}" in out.splitlines()


def test_check_missing_prerequisite_error(tmp_path, capsys):
    (tmp_path / "A.md").write_text("---\nrequires: ['[[Nowhere]]']\n---\n", encoding="utf-8")
    code, out, _ = run(capsys, "check", "--vault", str(tmp_path))
    assert code == 1
    assert "A.md:2: error: requires: names 'Nowhere', which does not exist" in out


def test_check_unquoted_requires_link(tmp_path, capsys):
    (tmp_path / "A.md").write_text("# A\n", encoding="utf-8")
    (tmp_path / "B.md").write_text("---\ntitle: B\nrequires: [[A]]\n---\nText.\n", encoding="utf-8")
    _, out, _ = run(capsys, "check", "--vault", str(tmp_path))
    assert ('B.md:3: warning: requires: [[A]] is read by YAML as a nested list, so kb finds no '
            'link in it; quote each link: requires: ["[[A]]"]') in out.splitlines()


# Where kb check points for an answer note without code, and which folder it names for the
# snippet: the project's snippets/, or a snippets/ folder inside a vault that is not the project's.
ANSWER_WITHOUT_CODE = [
    ("code heading", True, "Why does it work? [[A|answer]]\n",
     "# A\n\n## Code\n\n## In my own words\n\nMine.\n", 3, "snippets/"),
    ("answers property", False, "Why does it work? ^q1\n",
     "---\ntitle: A\nanswers: ['[[Q#^q1]]']\n---\n## In my own words\n\nMine.\n", 3,
     "{vault}/snippets/"),
    ("neither", False, "Why does it work? [[A|answer]]\n",
     "---\ntitle: A\n---\n## In my own words\n\nMine.\n", 4, "{vault}/snippets/"),
]


@pytest.mark.parametrize("own, question, answer, line, folder",
                         [case[1:] for case in ANSWER_WITHOUT_CODE],
                         ids=[case[0] for case in ANSWER_WITHOUT_CODE])
def test_check_answer_without_code_points_to_fix(tmp_path, capsys, own, question, answer, line,
                                                 folder):
    if own:
        (tmp_path / "mkdocs.yml").write_text("site_name: t\n", encoding="utf-8")
    vault = tmp_path / "docs"
    vault.mkdir()
    (vault / "Q.md").write_text(question, encoding="utf-8")
    (vault / "A.md").write_text(answer, encoding="utf-8")
    _, out, _ = run(capsys, "check", "--vault", str(vault))
    [problem] = [entry for entry in out.splitlines() if "embeds no runnable snippet" in entry]
    assert problem.startswith(f"A.md:{line}: error: answer to 'Why does it work?")
    assert problem.endswith(
        "add one under '## Code' as ![[name.py]] and put name.py in "
        + folder.format(vault=vault.resolve())
    )


def test_missing_vault_folder(tmp_path, capsys):
    code, _, err = run(capsys, "links", "--vault", str(tmp_path / "absent"))
    assert code == 2
    assert "vault folder not found" in err


def test_check_footer_singular(tmp_path, capsys):
    (tmp_path / "A.md").write_text("---\nrequires: ['[[Nowhere]]']\n---\n", encoding="utf-8")
    _, _, err = run(capsys, "check", "--vault", str(tmp_path))
    assert err.splitlines()[-1] == "1 error, 1 warning, 0 info"


def test_vault_that_is_a_file(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Read me\n", encoding="utf-8")
    for command in (["links"], ["graph"], ["check"], ["questions"], ["run", "--list"]):
        code, _, err = run(capsys, *command, "--vault", str(readme))
        assert code == 2
        assert f"--vault {readme} is not a folder" in err


def test_summary_without_prerequisites(tmp_path, capsys):
    (tmp_path / "A.md").write_text("[[B]]", encoding="utf-8")
    (tmp_path / "B.md").write_text("", encoding="utf-8")
    _, out, _ = run(capsys, "graph", "--vault", str(tmp_path))
    assert "longest prerequisite chain: none" in out.splitlines()
    assert "unresolved:   0 links to 0 missing notes" in out.splitlines()


def test_run_unknown_target_points_to_list(tmp_path, capsys):
    (tmp_path / "A.md").write_text("```python\nprint(1)\n```\n", encoding="utf-8")
    code, _, err = run(capsys, "run", "nosuch", "--vault", str(tmp_path))
    assert code == 2
    assert "no snippet or note named 'nosuch'; run `kb run --list` to see them" in err


def test_run_foreign_vault_says_pass_trust(tmp_path, capsys):
    vault = tmp_path / "foreign"
    vault.mkdir()
    (vault / "A.md").write_text("```python\nprint(1)\n```\n", encoding="utf-8")
    code, _, err = run(capsys, "run", "--vault", str(vault))
    assert code == 2
    assert (f"untrusted code not run: {vault.resolve() / 'A.md'} is in {vault.resolve()}, which is "
            "not this project's vault. If you trust its code, pass --trust to run the code of "
            "that vault") in err
    assert "trusted folders" not in err


def test_run_list_prints_units(tmp_path, capsys):
    (tmp_path / "A.md").write_text("```python\nprint(1)\n```\n", encoding="utf-8")
    (tmp_path / "B.md").write_text("No code.\n", encoding="utf-8")
    code, out, _ = run(capsys, "run", "--list", "--vault", str(tmp_path))
    assert code == 0
    assert out.splitlines() == ["A.md:1"]
    assert not (tmp_path / ".kb").exists()


def test_run_counts_singular():
    from types import SimpleNamespace

    from kb.cli_run import _counts_line

    one = [SimpleNamespace(status="passed", executed=True)]
    assert _counts_line(one, 1.0).startswith("1 unit: 1 passed, ")
    assert _counts_line(one * 2, 1.0).startswith("2 units: 2 passed, ")


def test_cache_dir_outside_foreign_vault(tmp_path, monkeypatch):
    from kb.cli_run import cache_dir_for
    from kb.project import Project

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "mkdocs.yml").write_text("site_name: t\n", encoding="utf-8")
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    own = Project.discover(tmp_path)
    assert cache_dir_for(own) == tmp_path / ".kb"
    # The project's .kb/ lies outside a foreign vault inside the project, so it is kept.
    inside = Project.discover(tmp_path, vault=tmp_path / "docs" / "sub")
    assert inside.foreign
    assert cache_dir_for(inside) == tmp_path / ".kb"
    # With --vault at the project root, .kb/ would be inside the vault.
    whole = Project.discover(tmp_path, vault=tmp_path)
    assert whole.foreign
    moved = cache_dir_for(whole)
    assert moved.parent == tmp_path / "xdg" / "kb" / "vaults"
    assert not moved.is_relative_to(tmp_path / "docs")
    assert cache_dir_for(Project.discover(tmp_path, vault=tmp_path)) == moved


@pytest.mark.slow
def test_run_trust_leaves_foreign_vault_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    vault = tmp_path / "notes"
    vault.mkdir()
    (vault / "A.md").write_text("```python\nprint(6 * 7)\n```\n", encoding="utf-8")
    before = sorted(path.relative_to(vault) for path in vault.rglob("*"))
    code, out, _ = run(capsys, "run", "--vault", str(vault), "--trust")
    assert code == 0, out
    assert "1 unit: 1 passed" in out
    assert sorted(path.relative_to(vault) for path in vault.rglob("*")) == before
    assert list((tmp_path / "xdg" / "kb" / "vaults").glob("*/cache"))


def test_script_runs_as_subprocess(vault):
    result = subprocess.run(
        [sys.executable, "-m", "kb.cli", "graph", "Transformer", "--depth", "1", "--vault", str(vault)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "Transformer"


# Real vaults ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml_notes(tmp_path_factory) -> Path:
    if not ML_NOTES.is_dir():
        pytest.skip(f"sample vault not found at {ML_NOTES}")
    copy = tmp_path_factory.mktemp("vault") / "ml-notes"
    shutil.copytree(ML_NOTES, copy, symlinks=True)
    return copy


def test_ml_notes_counts(ml_notes, capsys):
    """Pin the counts of the 68-note sample vault.

    Checked by hand: ``find -name '*.md'`` lists 68 notes, and the only other files are two
    LICENSE files (the attachments). ``grep -o '\\[\\[[^]]*\\]\\]'`` finds 148 wikilinks, and
    27 of them are Python indexing such as ``df[["Amount", "Time"]]`` inside fenced code or
    multi-line code spans, which leaves 121. The one Markdown link is ``[LICENSE](LICENSE)``
    in README.md, so there are 122 links. Two targets have no file: ``[[NLP]]`` in Data
    Augmentation.md and ``[[Imbalance Handling]]`` in ``Building a Fraud Detection System..md``.
    """
    code, out, _ = run(capsys, "graph", "--vault", str(ml_notes))
    assert code == 0
    assert "notes:        68" in out
    assert "attachments:  2" in out
    assert "links:        122" in out
    assert "unresolved:   2 links to 2 missing notes" in out

    code, out, _ = run(capsys, "links", "--unresolved", "--format", "json", "--vault", str(ml_notes))
    unresolved = [(link["source"].rsplit("/", 1)[-1], link["raw"]) for link in json.loads(out)]
    assert unresolved == [
        ("Data Augmentation.md", "[[NLP]]"),
        ("Building a Fraud Detection System..md", "[[Imbalance Handling]]"),
    ]


def test_ml_notes_path_follows_links(ml_notes, capsys):
    # Transformers <- Neural Networks history <- Neural Networks -> ... has the same length.
    code, out, _ = run(capsys, "graph", "--path", "Transformers", "Cross-Entropy",
                       "--vault", str(ml_notes))
    assert code == 0
    assert out.splitlines() == [
        "Transformers",
        "  --link--> RNN",
        "  --link--> Neural Networks",
        "  --link--> Loss Function",
        "  --link--> Cross-Entropy",
    ]


@pytest.mark.parametrize(
    "args",
    [["graph"], ["links"], ["tags"], ["check"], ["graph", "Transformers"], ["graph", "Transformers", "--order"],
     ["graph", "--format", "graphml"], ["graph", "--format", "mermaid"]],
    ids=lambda args: " ".join(args),
)
def test_ml_notes_commands_run(ml_notes, capsys, args):
    code, out, err = run(capsys, *args, "--vault", str(ml_notes))
    assert code in (0, 1), err
    assert out


@pytest.mark.parametrize("args", [["graph"], ["links"], ["check"]], ids=lambda args: " ".join(args))
def test_project_docs_commands_run(capsys, args):
    docs = REPOSITORY / "docs"
    if not docs.is_dir():
        pytest.skip("the project has no docs/ folder")
    code, _, err = run(capsys, *args, "--vault", str(docs))
    assert code in (0, 1), err
