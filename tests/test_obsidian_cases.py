"""Run every Obsidian syntax case through the real ``kb`` command and compare with its expected results.

Each case folder holds a small vault and ``expected.json``. Edges are compared as multisets
(order inside a note carries no meaning), tags as sets. Optional edge fields are compared only
in the cases that state them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from kb.vault import Vault

CASES = Path(__file__).resolve().parent.parent.parent / "shared" / "obsidian" / "cases"

CORE_FIELDS = (
    "source", "raw", "syntax", "kind", "target", "heading", "block", "display", "size",
    "fragment",
)
OPTIONAL_FIELDS = (
    "would_create", "ambiguous", "candidates", "self_link", "heading_exists", "property",
)
# Values an optional field takes when a case leaves it out of one edge but states it on another.
OPTIONAL_DEFAULTS = {"would_create": None, "ambiguous": False, "candidates": []}


def _case_folders() -> list[Path]:
    if not CASES.is_dir():
        return []
    return sorted(folder for folder in CASES.iterdir() if (folder / "expected.json").is_file())


pytestmark = pytest.mark.skipif(
    not CASES.is_dir(), reason=f"Obsidian case corpus not found at {CASES}"
)


def _run_kb(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "kb.cli", *args],
        capture_output=True, text=True, encoding="utf-8", timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _edge_key(edge: dict, fields: tuple[str, ...]) -> str:
    return json.dumps({name: edge.get(name) for name in fields}, sort_keys=True, ensure_ascii=False)


@pytest.fixture(scope="module", params=_case_folders() or [None], ids=lambda f: f.name if f else "none")
def case(request) -> tuple[Path, dict]:
    if request.param is None:
        pytest.skip(f"no cases with expected.json under {CASES}")
    folder = request.param
    return folder, json.loads((folder / "expected.json").read_text(encoding="utf-8"))


def test_case_edges(case):
    folder, expected = case
    got = json.loads(_run_kb("links", "--vault", str(folder / "vault"), "--format", "json"))

    stated = [name for name in OPTIONAL_FIELDS if any(name in edge for edge in expected["edges"])]
    fields = CORE_FIELDS + tuple(stated)
    defaults = {name: OPTIONAL_DEFAULTS[name] for name in stated if name in OPTIONAL_DEFAULTS}

    got_edges = Counter(_edge_key(edge, fields) for edge in got)
    expected_edges = Counter(_edge_key({**defaults, **edge}, fields) for edge in expected["edges"])
    assert got_edges - expected_edges == Counter(), "edges kb reports but the case does not"
    assert expected_edges - got_edges == Counter(), "edges the case expects but kb misses"


def test_case_tags(case):
    folder, expected = case
    got = json.loads(_run_kb("tags", "--vault", str(folder / "vault"), "--format", "json"))

    got_tags = {path: {tag.lower() for tag in tags} for path, tags in got.items()}
    expected_tags = {path: {tag.lower() for tag in tags} for path, tags in expected["tags"].items()}
    assert got_tags == expected_tags


def _cases_stating_structure() -> list[Path]:
    return [
        folder for folder in _case_folders()
        if {"aliases", "blocks", "callouts"} & set(json.loads((folder / "expected.json").read_text()))
    ]


@pytest.mark.parametrize("folder", _cases_stating_structure(), ids=lambda folder: folder.name)
def test_case_aliases_blocks_callouts(folder):
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    vault = Vault.load(folder / "vault")

    for path, aliases in expected.get("aliases", {}).items():
        assert vault.notes[path].aliases == aliases, path
    for path, blocks in expected.get("blocks", {}).items():
        assert [block.id for block in vault.notes[path].blocks] == blocks, path
    for path, callouts in expected.get("callouts", {}).items():
        got = [
            {"type": c.type, "title": c.title, "fold": c.fold, "depth": c.depth}
            for c in vault.notes[path].callouts
        ]
        assert got == callouts, path


def test_case_files_all_found(case):
    folder, expected = case
    vault = Vault.load(folder / "vault")
    assert sorted(vault.files) == sorted(expected["files"])
