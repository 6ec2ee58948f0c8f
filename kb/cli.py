"""The ``kb`` command line: links, tags, graph and check over one parse of the vault.

Other commands (``kb run``, ``kb questions``...) register themselves from their own modules
through an ``add_parser(subparsers)`` function, so this file stays a thin dispatcher.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import weakref
from pathlib import Path

import networkx as nx

from kb.graph import (
    STRONG,
    DependencyTree,
    build_graph,
    connection_path,
    dependency_graph,
    dependency_tree,
    display_names,
    is_dependency,
    learning_order,
    requires_cycles,
    summary,
    topic_dependencies,
)
from kb.model import _ESCAPE_CONTROL, Problem
from kb.project import Project
from kb.site_pages import is_filled_page

__all__ = ["main", "plural", "positive_int"]

GRAPH_RULES = """\
dependency rules for the tree and --order:
  - requires: links are prerequisites; body links and embeds are weaker ones ("link").
  - other front-matter links (answers:, related: ...) are metadata, not dependencies.
  - an answer note's link back to the note that holds its question (its answers: target)
    is not a dependency.
  - notes that are linked but not written are left out and listed as "missing notes"
    (on stderr, or under "missing_notes" in JSON).
  - TOPIC comes last in its learning order (first with --reverse): links back into TOPIC
    are cut and reported, and so is one edge of each remaining cycle.

--path A B shows a chain with the fewest links between A and B, each link followed in
either direction. Among chains of that length, it shows one with the fewest links followed
backwards (drawn <--kind--), so a chain that only follows links wins when one exists. A
longer chain is never chosen for its direction.
"""

# Modules that add their own subcommands; a missing one is simply not offered.
COMMAND_MODULES = ("kb.cli_run", "kb.cli_questions")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    vault = getattr(args, "vault", None)
    if vault is not None and vault.exists() and not vault.is_dir():
        print(f"kb: error: --vault {vault} is not a folder; pass the folder that holds the "
              "notes", file=sys.stderr)
        return 2
    try:
        return args.handler(args) or 0
    except FileNotFoundError as error:
        print(f"kb: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        # Commands that hold typed text keep it before this point (see kb.cli_questions).
        print("kb: interrupted", file=sys.stderr)
        return 130


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """Return ``count`` with ``noun`` in singular or plural: ``1 error``, ``2 errors``."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kb",
        description="Study-notes knowledge base: an Obsidian vault as a topic graph, a site "
        "and runnable answers.",
    )
    commands = parser.add_subparsers(metavar="COMMAND")

    links = commands.add_parser("links", help="list every link occurrence with its target")
    _add_vault_option(links)
    links.add_argument("--format", choices=("table", "json"), default="table",
                       help="output format (default: table)")
    links.add_argument("--unresolved", action="store_true", help="only unresolved links")
    links.set_defaults(handler=command_links)

    tags = commands.add_parser("tags", help="list each note's tags")
    _add_vault_option(tags)
    tags.add_argument("--format", choices=("table", "json"), default="table",
                      help="output format (default: table)")
    tags.set_defaults(handler=command_tags)

    graph = commands.add_parser(
        "graph", help="prerequisites of a topic, a learning order, or how two topics connect",
        description="With TOPIC: what TOPIC depends on (requires: lists, then plain links). "
        "Without: a summary of the vault.",
        epilog=GRAPH_RULES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_vault_option(graph)
    graph.add_argument("topic", nargs="?", help="note name, path or alias (any case)")
    graph.add_argument("--reverse", action="store_true", help="show what depends on TOPIC")
    graph.add_argument("--depth", type=positive_int, default=None,
                       help="stop the tree after N levels (default: no limit)")
    graph.add_argument("--order", action="store_true",
                       help="print TOPIC's prerequisites in a learning order")
    graph.add_argument("--path", nargs=2, metavar=("A", "B"),
                       help="how topic A connects to B (without TOPIC, --order, --reverse or "
                       "--depth)")
    graph.add_argument("--strong", action="store_true",
                       help="follow and draw only requires: prerequisites, not plain links")
    graph.add_argument("--format", choices=("tree", "json", "dot", "mermaid", "graphml"),
                       default="tree",
                       help="output format (default: tree). With TOPIC, --order or --path, "
                       "'tree' is the text view and 'json' its JSON record; dot, mermaid and "
                       "graphml draw the notes shown with the edges they follow. Without "
                       "TOPIC, these three draw the whole vault")
    graph.set_defaults(handler=command_graph)

    check = commands.add_parser("check", help="report broken, ambiguous and cyclic links")
    _add_vault_option(check)
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.set_defaults(handler=command_check)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.add_parser(commands)
    return parser


def _add_vault_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vault", type=Path, default=None,
                        help="vault folder (default: docs_dir of the nearest mkdocs.yml)")


def positive_int(text: str) -> int:
    """Return ``text`` as an int of 1 or more, for argparse's ``type=``.

    Invalid text raises ArgumentTypeError, whose message argparse prints after the option
    name. A ValueError would make argparse print this function's name instead.
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def load_project(args: argparse.Namespace) -> Project:
    return Project.discover(vault=args.vault)


# links and tags -----------------------------------------------------------------------------


def command_links(args: argparse.Namespace) -> int:
    vault = load_project(args).vault
    links = [link for link in vault.links if not args.unresolved or link.target is None]
    if args.format == "json":
        json.dump([link.record() for link in links], sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    for link in links:
        if link.target is not None:
            target = link.target
        elif link.would_create is None:
            # A Markdown link such as ../Home.md in a note at the vault root. kb check warns
            # about it too.
            target = "(outside the vault, kb never follows it)"
        else:
            target = f"(unresolved, would create {link.would_create})"
        extra = " (ambiguous)" if link.ambiguous else ""
        print(_printable(f"{link.source}:{link.line}: {link.raw} -> {target}{extra}"))
    return 0


def command_tags(args: argparse.Namespace) -> int:
    vault = load_project(args).vault
    tags = {path: vault.notes[path].tag_names for path in sorted(vault.notes)}
    if args.format == "json":
        json.dump(tags, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    for path, names in tags.items():
        if names:
            print(_printable(f"{path}: {' '.join('#' + name for name in names)}"))
    return 0


# graph ----------------------------------------------------------------------------------


def command_graph(args: argparse.Namespace) -> int:
    project = load_project(args)
    vault = project.vault
    G = build_graph(vault)

    if args.path:
        # TOPIC, --order, --reverse and --depth shape a topic's tree, and --path draws none.
        ignored = [f"TOPIC '{args.topic}'"] if args.topic is not None else []
        ignored += [option for option, given in (
            ("--order", args.order), ("--reverse", args.reverse), ("--depth", args.depth is not None),
        ) if given]
        if ignored:
            print(_printable(f"kb: error: --path A B cannot be combined with {', '.join(ignored)}; "
                             "use --path alone to see how A connects to B, or drop --path"),
                  file=sys.stderr)
            return 2
        a, b = (_topic(vault, name) for name in args.path)
        if a is None or b is None:
            return 2
        try:
            steps = connection_path(_strong_edges(G) if args.strong else G, a, b)
        except nx.NetworkXNoPath:
            scope = " by requires: links (drop --strong to follow plain links too)" if args.strong else ""
            print(f"kb: '{args.path[0]}' and '{args.path[1]}' are not connected{scope}")
            return 1
        if args.format == "json":
            json.dump([{"node": n, "kind": k, "direction": d} for n, k, d in steps], sys.stdout, indent=2)
            print()
        elif args.format == "tree":
            print(_label(G, steps[0][0]))
            for node, kind, direction in steps[1:]:
                arrow = f"--{kind}-->" if direction == "->" else f"<--{kind}--"
                print(f"  {arrow} {_label(G, node)}")
        else:
            _export(_path_graph(G, steps), args.format, G)
        return 0

    if args.topic is None:
        if args.format != "tree":
            return _export(_strong_edges(G) if args.strong else G, args.format, G)
        return _print_summary(G)

    topic = _topic(vault, args.topic)
    if topic is None:
        return 2
    D = dependency_graph(G, strong_only=args.strong)
    if args.reverse:
        D = D.reverse(copy=True)
    dependencies = topic_dependencies(D, topic)

    if args.order:
        order, cut = learning_order(D, topic)
        if args.reverse:
            order.reverse()
        cut = _as_written(cut, args.reverse)
        if args.format == "json":
            record = {"order": order, "cycles_cut": cut, "missing_notes": dependencies.missing}
            json.dump(record, sys.stdout, indent=2, ensure_ascii=False)
            print()
            return 0
        if args.format == "tree":
            for index, node in enumerate(order, 1):
                print(f"{index:3d}. {_label(G, node)}")
            _print_cut_and_missing(G, cut, dependencies.missing)
            return 0
        return _export(_dependency_edges(G, order, args.strong, ignored=cut), args.format, G)

    tree = dependency_tree(dependencies.graph, topic, args.depth)
    cut = _as_written(dependencies.cut, args.reverse)
    if args.format == "tree":
        _print_tree(G, tree)
        _print_cut_and_missing(G, cut, dependencies.missing)
        return 0
    if args.format == "json":
        record = _tree_json(tree)
        record["cycles_cut"] = cut
        record["missing_notes"] = dependencies.missing
        # A prerequisite chain can be as deep as the vault has notes, deeper than json.dump
        # can recurse, so the tree is written without recursion.
        sys.stdout.writelines(_iter_json(record))
        print()
        return 0
    return _export(_dependency_edges(G, _tree_nodes(tree), args.strong, ignored=cut), args.format, G)


def _strong_edges(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Return ``G`` with every node but only its ``requires:`` edges."""
    H = nx.MultiDiGraph()
    H.add_nodes_from(G.nodes(data=True))
    H.add_edges_from((u, v, kind, data) for u, v, kind, data in G.edges(keys=True, data=True)
                     if kind == STRONG)
    return H


def _dependency_edges(
    G: nx.MultiDiGraph, nodes, strong_only: bool, ignored: list[tuple[str, str]] = ()
) -> nx.MultiDiGraph:
    """Return the subgraph of ``G`` on ``nodes`` with only its dependency edges.

    ``ignored`` lists "u depends on v" pairs cut from a tree or order; they are left out too.
    """
    nodes = set(nodes)
    skip = set(ignored)
    H = nx.MultiDiGraph()
    H.add_nodes_from((node, G.nodes[node]) for node in nodes)
    for u, v, kind, data in G.edges(keys=True, data=True):
        if u in nodes and v in nodes and (u, v) not in skip and is_dependency(G, u, v, kind, strong_only):
            H.add_edge(u, v, key=kind, **data)
    return H


def _path_graph(G: nx.MultiDiGraph, steps: list[tuple[str, str, str]]) -> nx.MultiDiGraph:
    """Return the nodes of a connection path and the one edge that joins each pair."""
    H = nx.MultiDiGraph()
    H.add_nodes_from((node, G.nodes[node]) for node, _kind, _direction in steps)
    for (previous, _, _), (node, kind, direction) in zip(steps, steps[1:]):
        u, v = (previous, node) if direction == "->" else (node, previous)
        H.add_edge(u, v, key=kind, **G.edges[u, v, kind])
    return H


def _as_written(edges: list[tuple[str, str]], reverse: bool) -> list[tuple[str, str]]:
    """Return dependency edges as "u depends on v", undoing the reversal of ``--reverse``."""
    return [(v, u) for u, v in edges] if reverse else list(edges)


def _print_cut_and_missing(G: nx.MultiDiGraph, cut: list[tuple[str, str]], missing: list[str]) -> None:
    for u, v in cut:
        print(f"note: cycle broken by ignoring {_label(G, u)} -> {_label(G, v)}", file=sys.stderr)
    if missing:
        print("missing notes (linked but not written, left out above):", file=sys.stderr)
        for node in missing:
            print(f"  {G.nodes[node]['label']}", file=sys.stderr)


_GRAPHML_KEY = re.compile(r'<key id="(?P<id>[^"]+)"[^>]* attr\.type="(?P<type>[^"]+)"')
_GRAPHML_DATA = re.compile(r'<data key="(?P<key>[^"]+)">(?P<value>True|False)</data>')


def _topic(vault, query: str) -> str | None:
    note = vault.note_for(query)
    if note is not None:
        resolution = vault.resolve(query, "", "wikilink")
        if resolution.ambiguous and resolution.target == note.path:
            print(f"kb: '{query}' is ambiguous: it matches {len(resolution.candidates)} notes "
                  f"({', '.join(resolution.candidates)}); kb uses '{note.path}'. Write the "
                  "folder path to choose one", file=sys.stderr)
        return note.path
    hints = vault.suggestions(query)
    hint = f"; did you mean: {', '.join(hints)}" if hints else ""
    print(f"kb: error: no note named '{query}'{hint}", file=sys.stderr)
    return None


def _label(G: nx.MultiDiGraph, node: str) -> str:
    """Return the short display name of ``node`` (see :func:`kb.graph.display_names`)."""
    names = _DISPLAY_NAMES.get(G)
    if names is None:
        names = _DISPLAY_NAMES[G] = display_names(G)
    return _printable(names[node])


def _printable(text: str) -> str:
    """Return ``text`` with control characters written as escapes, so a file or link name
    cannot move the cursor, recolour or retitle the terminal that shows kb's output."""
    return text.translate(_ESCAPE_CONTROL)


# Display names per graph, computed once per command instead of once per printed node.
_DISPLAY_NAMES: "weakref.WeakKeyDictionary[nx.MultiDiGraph, dict[str, str]]" = (
    weakref.WeakKeyDictionary()
)


def _print_tree(G: nx.MultiDiGraph, tree: DependencyTree) -> None:
    print(_label(G, tree.node))
    stack = [(child, "", index == len(tree.children) - 1) for index, child in reversed(list(enumerate(tree.children)))]
    while stack:
        node, prefix, last = stack.pop()
        marker = "`-- " if last else "|-- "
        notes = []
        if node.strength == "weak":
            notes.append("link")
        if node.repeat:
            notes.append("see above")
        if node.cycle:
            notes.append("cycle")
        suffix = f"  ({', '.join(notes)})" if notes else ""
        print(f"{prefix}{marker}{_label(G, node.node)}{suffix}")
        child_prefix = prefix + ("    " if last else "|   ")
        for index, child in reversed(list(enumerate(node.children))):
            stack.append((child, child_prefix, index == len(node.children) - 1))


def _tree_json(tree: DependencyTree) -> dict:
    root = {"node": tree.node, "children": []}
    stack = [(tree, root)]
    while stack:
        node, record = stack.pop()
        for child in node.children:
            child_record = {"node": child.node, "strength": child.strength, "children": []}
            if child.repeat:
                child_record["repeat"] = True
            if child.cycle:
                child_record["cycle"] = True
            record["children"].append(child_record)
            stack.append((child, child_record))
    return root


def _iter_json(value: object, indent: int = 2):
    """Yield the text ``json.dump(value, indent=indent, ensure_ascii=False)`` writes, using a
    stack instead of recursion so any nesting depth works."""
    # Each entry: (container, iterator over its items, depth, whether an item was written).
    stack: list[list] = []

    def open_container(container, depth: int):
        if not container:
            return "{}" if isinstance(container, dict) else "[]"
        items = iter(container.items()) if isinstance(container, dict) else iter(container)
        stack.append([container, items, depth, False])
        return "{" if isinstance(container, dict) else "["

    def start(item, depth: int) -> str:
        if isinstance(item, (dict, list)):
            return open_container(item, depth + 1)
        return json.dumps(item, ensure_ascii=False)

    yield start(value, -1)
    while stack:
        entry = stack[-1]
        container, items, depth, written = entry
        item = next(items, _END)
        pad = " " * (indent * (depth + 1))
        if item is _END:
            stack.pop()
            closing = "}" if isinstance(container, dict) else "]"
            yield "\n" + " " * (indent * depth) + closing
            continue
        separator = "," if written else ""
        entry[3] = True
        if isinstance(container, dict):
            key, child = item
            yield f"{separator}\n{pad}{json.dumps(str(key), ensure_ascii=False)}: "
        else:
            child = item
            yield f"{separator}\n{pad}"
        yield start(child, depth)


_END = object()


def _tree_nodes(tree: DependencyTree) -> set[str]:
    nodes, stack = set(), [tree]
    while stack:
        node = stack.pop()
        nodes.add(node.node)
        stack.extend(node.children)
    return nodes


def _print_summary(G: nx.MultiDiGraph) -> int:
    facts = summary(G)
    print(f"notes:        {facts['notes']}")
    print(f"attachments:  {facts['attachments']}")
    print(f"links:        {facts['links']}")
    print(f"unresolved:   {plural(facts['unresolved_links'], 'link')} to "
          f"{plural(facts['unresolved_targets'], 'missing note')}")
    print(f"orphans:      {len(facts['orphans'])}")
    print(f"components:   {facts['components']}")
    chain = facts["longest_prerequisite_chain"]
    print(f"longest prerequisite chain: {plural(len(chain), 'note') if chain else 'none'}")
    for node in chain:
        print(f"  {_label(G, node)}")
    return 0


def _export(G: nx.MultiDiGraph, fmt: str, whole: nx.MultiDiGraph | None = None) -> int:
    """Print ``G`` in ``fmt``; labels come from ``whole``, the full graph ``G`` is part of."""
    whole = G if whole is None else whole
    if fmt == "json":
        data = nx.node_link_data(G, edges="links")
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=list)
        print()
    elif fmt == "graphml":
        H = nx.MultiDiGraph()
        for node, data in G.nodes(data=True):
            # Control characters are invalid in XML 1.0, so they are written as escapes.
            H.add_node(_printable(node), **{key: (_printable(value) if isinstance(value, str) else value if isinstance(value, (int, float, bool)) else _printable(" ".join(map(str, value)))) for key, value in data.items()})
        # GraphML needs a unique id per edge. The edge's kind is kept in its "kind" data.
        for index, (u, v, data) in enumerate(G.edges(data=True)):
            H.add_edge(_printable(u), _printable(v), key=f"e{index}", kind=data["kind"],
                       count=data["count"], lines=" ".join(map(str, data["lines"])))
        # networkx writes booleans as Python's "True"/"False"; XML Schema's boolean is
        # "true"/"false", which networkx reads back too.
        boolean_keys: set[str] = set()
        for line in nx.generate_graphml(H):
            key = _GRAPHML_KEY.search(line)
            if key and key.group("type") == "boolean":
                boolean_keys.add(key.group("id"))
            value = _GRAPHML_DATA.search(line)
            if value and value.group("key") in boolean_keys:
                line = line[: value.start("value")] + value.group("value").lower() + line[value.end("value") :]
            print(line)
    elif fmt == "dot":
        print("digraph kb {")
        for node, data in sorted(G.nodes(data=True)):
            style = ", style=dashed" if data["unresolved"] else ""
            print(f"  {_quote(node)} [label={_quote(_label(whole, node))}{style}];")
        for u, v, kind in sorted(G.edges(keys=True)):
            style = _DOT_EDGE_STYLES.get(kind, "")
            print(f"  {_quote(u)} -> {_quote(v)} [label={_quote(kind)}{style}];")
        print("}")
    elif fmt == "mermaid":
        ids = {node: f"n{index}" for index, node in enumerate(sorted(G.nodes))}
        print("graph LR")
        for node, data in sorted(G.nodes(data=True)):
            label = _label(whole, node).translate(_MERMAID_CODES)
            print(f'  {ids[node]}["{label}"]')
        for u, v, kind in sorted(G.edges(keys=True)):
            arrow = _MERMAID_ARROWS.get(kind, "-->")
            print(f"  {ids[u]} {arrow} {ids[v]}")
    return 0


# Edge styles by kind: prerequisites bold, embeds dotted, plain links as drawn by default.
_DOT_EDGE_STYLES = {"requires": " style=bold", "embed": " style=dotted"}
_MERMAID_ARROWS = {"requires": "==>", "embed": "-.->"}
# Mermaid renders a label as HTML and decodes "#name;" and "#number;" codes in it, so these
# characters are written as codes. translate() makes one pass, so it never re-escapes a "#"
# that it wrote.
_MERMAID_CODES = str.maketrans(
    {'"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "#": "#35;"}
)


def _quote(text: str) -> str:
    return '"' + _printable(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


# check ----------------------------------------------------------------------------------


def command_check(args: argparse.Namespace) -> int:
    project = load_project(args)
    vault = project.vault
    G = build_graph(vault)
    problems: list[Problem] = list(vault.problems) + vault.link_problems()

    for cycle in requires_cycles(G):
        first = cycle[0]
        line = next(
            (link.line for link in vault.notes[first].links if link.property == "requires"), None
        )
        chain = " -> ".join(cycle + [cycle[0]])
        problems.append(
            Problem(first, line, "error", "requires-cycle",
                    f"prerequisite cycle: {chain}; remove one of these requires: entries")
        )
    for u, v, kind in G.edges(keys=True):
        if kind == "requires" and G.nodes[v]["unresolved"]:
            line = G.edges[u, v, kind]["lines"][0]
            problems.append(
                Problem(u, line, "error", "missing-prerequisite",
                        f"requires: names '{G.nodes[v]['label']}', which does not exist; create "
                        "the note or fix the name")
            )
    for orphan in summary(G)["orphans"]:
        if is_filled_page(vault.notes[orphan]):
            continue  # its links appear when the site fills it in
        problems.append(
            Problem(orphan, None, "info", "orphan-note",
                    "no links to or from this note; link it from a related note")
        )

    extras = list(_extra_checks(project, args))
    # A missing snippet that an answer embeds gets the snippet check's advice (add it to the
    # snippets folder), not the link check's "create 'name.py.md'".
    missing_snippets = {(extra.path, extra.line) for extra in extras if extra.code == "answer-without-code"}
    problems = [
        problem for problem in problems
        if not (problem.code == "unresolved-link" and (problem.path, problem.line) in missing_snippets)
    ]
    problems.extend(extras)

    if args.strict:
        for problem in problems:
            if problem.severity == "warning":
                problem.severity = "error"
    order = {"error": 0, "warning": 1, "info": 2}
    problems.sort(key=lambda p: (order[p.severity], p.path, p.line or 0))
    for problem in problems:
        print(problem)
    errors = sum(problem.severity == "error" for problem in problems)
    warnings = sum(problem.severity == "warning" for problem in problems)
    infos = len(problems) - errors - warnings
    print(f"{plural(errors, 'error')}, {plural(warnings, 'warning')}, {infos} info", file=sys.stderr)
    return 1 if errors else 0


def _extra_checks(project: Project, args: argparse.Namespace) -> list[Problem]:
    """Checks contributed by other modules (e.g. open questions), if installed."""
    try:
        module = importlib.import_module("kb.questions")
    except ModuleNotFoundError:
        return []
    check = getattr(module, "check_problems", None)
    return list(check(project, args)) if check else []


if __name__ == "__main__":
    raise SystemExit(main())
