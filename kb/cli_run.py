"""``kb run``: execute snippets and note fences through the cached runner and summarise."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import unicodedata
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from kb.cli import plural, positive_int
from kb.project import Project
from kb.runner import STATUSES, RunResult, Runner, UntrustedCodeError
from kb.snippets import RunUnit, SnippetError, note_units, read_snippet, snippet_files, units_from_note

__all__ = ["add_parser", "cache_dir_for", "command_run", "select_units"]

STATUS_STYLES = {
    "passed": "green",
    "failed": "bold red",
    "skipped": "dim",
    "missing-dependency": "yellow",
    "fragment": "magenta",
}
ERROR_WIDTH = 100


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run",
        help="execute snippets and note fences, reusing cached results",
        description="Execute snippets/*.py and the Python fences of the vault's notes in Jupyter "
        "kernels. Results are cached in .kb/cache/ and reused until the code, an imported local "
        "module, a declared data file, Python or torch changes. Exits 1 when anything failed.",
    )
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="SNIPPET|NOTE",
        help="snippet (path, file name or name without .py) or note (path, vault-relative "
        "path, or name; add :LINE to pick one fence); default: every snippet and note",
    )
    parser.add_argument("-j", "--jobs", type=positive_int, default=1,
                        help="number of kernels running at once (default: 1)")
    parser.add_argument("--force", action="store_true",
                        help="execute again even when a cached result is current")
    parser.add_argument("--trust", action="store_true",
                        help="allow running code from a vault outside this project")
    parser.add_argument("--vault", type=Path, default=None,
                        help="vault folder (default: docs_dir of the nearest mkdocs.yml)")
    parser.add_argument("--strict", action="store_true",
                        help="also exit 1 on missing dependencies and fragments")
    parser.add_argument("--list", action="store_true",
                        help="print the name of every snippet and runnable note fence, run nothing")
    parser.set_defaults(handler=command_run)
    return parser


def cache_dir_for(project: Project) -> Path:
    """Return ``project.cache_dir``, which never lies inside a foreign vault."""
    return project.cache_dir


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _note_key(path: str) -> str:
    folded = _fold(path)
    return folded[:-3] if folded.endswith(".md") else folded


def select_units(project: Project, targets: list[str]) -> tuple[list[RunUnit], list[str]]:
    """Return the units ``targets`` name (all units when empty) and the errors found.

    Snippets of a foreign vault's project are left out: only its notes are selected.
    """
    errors: list[str] = []
    snippets: dict[Path, RunUnit] = {}
    snippet_paths = [] if project.foreign else snippet_files(project.snippets_dir)
    for path in snippet_paths:
        try:
            snippets[path.resolve()] = read_snippet(path, project.root)
        except SnippetError as error:
            errors.append(str(error))
    vault = project.vault
    if not targets:
        return [*snippets.values(), *note_units(vault)], errors

    notes_by_key = {_note_key(path): path for path in vault.notes}
    notes_by_name = {}
    for path, note in vault.notes.items():
        notes_by_name.setdefault(_fold(note.name), []).append(path)
    vault_dir = project.vault_dir.resolve()

    selected: list[RunUnit] = []
    for target in targets:
        name, _, line_text = target.rpartition(":") if _has_line_suffix(target) else (target, "", "")
        line = int(line_text) if line_text else None
        path = Path(name).resolve()

        snippet = snippets.get(path) or next(
            (unit for file, unit in snippets.items() if name in (file.name, file.stem)), None
        )
        if snippet is not None:
            selected.append(snippet)
            continue

        note_path = None
        if path.is_relative_to(vault_dir):
            note_path = notes_by_key.get(_note_key(path.relative_to(vault_dir).as_posix()))
        note_path = note_path or notes_by_key.get(_note_key(name))
        if note_path is None and len(notes_by_name.get(_fold(name), [])) == 1:
            note_path = notes_by_name[_fold(name)][0]
        if note_path is None:
            errors.append(f"no snippet or note named {target!r}; run `kb run --list` to see them")
            continue
        units = units_from_note(vault.notes[note_path], vault.files[note_path], label=note_path)
        if line is not None:
            units = [unit for unit in units if unit.line == line]
            if not units:
                errors.append(f"{note_path} has no runnable fence opening at line {line}")
        selected.extend(units)
    return selected, errors


def _has_line_suffix(target: str) -> bool:
    head, sep, tail = target.rpartition(":")
    return bool(sep and head and tail.isdigit())


def command_run(args: argparse.Namespace) -> int:
    project = Project.discover(vault=args.vault)
    units, errors = select_units(project, args.targets)
    err_console = Console(stderr=True)
    for error in errors:
        err_console.print(f"kb run: error: {error}", style="red", markup=False, highlight=False,
                          soft_wrap=True)
    if errors and args.targets:
        return 2
    if args.list:
        for unit in units:
            print(unit.name)
        return 1 if errors else 0

    trusted = [] if project.foreign else [project.snippets_dir, project.vault_dir]
    runner = Runner(project.root, cache_dir=cache_dir_for(project), trusted_dirs=trusted,
                    trust=args.trust, force=args.force, jobs=args.jobs)
    started = time.monotonic()
    try:
        results = _run_with_progress(runner, units, err_console)
    except UntrustedCodeError as error:
        message = str(error)
        if project.foreign:
            message = (
                f"untrusted code not run: {error.path} is in {project.vault_dir.resolve()}, "
                "which is not this project's vault. If you trust its code, pass --trust to run "
                "the code of that vault"
            )
        err_console.print(f"kb run: error: {message}", style="red", markup=False, highlight=False,
                          soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        runner.kill_workers()
        err_console.print("kb run: interrupted; running kernels were killed", style="red")
        return 130

    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(summary_table(results))
    console.print(_counts_line(results, time.monotonic() - started), highlight=False)
    failing = {"failed", "missing-dependency", "fragment"} if args.strict else {"failed"}
    return 1 if errors or any(result.status in failing for result in results) else 0


def _run_with_progress(runner: Runner, units: list[RunUnit], console: Console) -> list[RunResult]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("running", total=len(units))

        def advance(result: RunResult) -> None:
            progress.update(task, advance=1, description=f"{result.unit.name[:40]}")

        return runner.run(units, on_result=advance)


def summary_table(results: list[RunResult]) -> Table:
    """Build the summary: name, status, time, cached or executed, and the error in one line."""
    table = Table(show_edge=False, header_style="bold")
    table.add_column("Name", overflow="fold")
    table.add_column("Status", no_wrap=True)
    table.add_column("Time", justify="right", no_wrap=True)
    table.add_column("Run", no_wrap=True)
    table.add_column("Error", overflow="ellipsis", no_wrap=True, max_width=ERROR_WIDTH)
    for result in results:
        if result.executed:
            how = "executed"
        elif result.cached:
            how = "cached"
        else:
            how = "not run"
        error = result.error or ""
        if result.location and result.status != "skipped":
            # The name column already gives the file, so the error needs only the line.
            where = result.location.rpartition(":")[2]
            error = f"line {where}: {error}"
        # Text cells keep brackets in names and errors from being read as rich markup.
        table.add_row(
            Text(result.unit.name),
            Text(result.status, style=STATUS_STYLES[result.status]),
            f"{result.duration:.1f}s" if result.duration else "-",
            how,
            Text(error),
        )
    return table


def _counts_line(results: list[RunResult], wall: float) -> str:
    counts = {status: 0 for status in STATUSES}
    for result in results:
        counts[result.status] += 1
    executed = sum(result.executed for result in results)
    parts = [f"{counts[status]} {status}" for status in STATUSES]
    return f"{plural(len(results), 'unit')}: {', '.join(parts)}; {executed} executed in {wall:.1f}s"
