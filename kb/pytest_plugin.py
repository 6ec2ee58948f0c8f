"""pytest plugin: every snippet and every runnable note fence is a test item.

Inside a kb project (a folder with ``mkdocs.yml``), pytest collects ``snippets/*.py`` as one item
per file and each runnable unit of a note in the vault as one item, named after the line of its
first fence. Items run through the same :class:`kb.runner.Runner` and cache as ``kb run``, so a
unit that ``kb run`` already executed is not executed again.

A failure is reported at ``note.md:LINE`` or ``snippet.py:LINE`` with the kernel's own
traceback. ``skip`` fences, missing dependencies and fragments are skipped with the reason. ``--kb-strict`` fails missing dependencies and fragments instead, and ``--kb-force``
ignores cached results. For parallel runs use pytest-xdist (``-n N``): the cache lock makes each
unit execute once across workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kb.project import Project
from kb.runner import RunResult, Runner
from kb.snippets import RunUnit, SnippetError, read_snippet, snippet_files, units_from_note

_STATE = pytest.StashKey["_KbState | None"]()


class _KbState:
    """The project and runner shared by all items of a session."""

    def __init__(self, project: Project, runner: Runner) -> None:
        self.project = project
        self.runner = runner
        self.snippets = {path.resolve() for path in snippet_files(project.snippets_dir)}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kb", "kb snippets and note fences")
    group.addoption("--kb-force", action="store_true",
                    help="execute snippets and fences again even when a cached result is current")
    group.addoption("--kb-strict", action="store_true",
                    help="fail, instead of skip, fences with missing dependencies and fragments")
    group.addoption("--kb-no-run", action="store_true",
                    help="do not collect snippets and note fences as test items")


def _state(config: pytest.Config) -> _KbState | None:
    if _STATE in config.stash:
        return config.stash[_STATE]
    state = None
    if not config.getoption("kb_no_run", False):
        try:
            project = Project.discover(start=config.rootpath)
        except FileNotFoundError:
            project = None
        if project is not None:
            runner = Runner(
                project.root,
                cache_dir=project.cache_dir,
                trusted_dirs=[project.snippets_dir, project.vault_dir],
                force=config.getoption("kb_force", False),
            )
            state = _KbState(project, runner)
    config.stash[_STATE] = state
    return state


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = _state(parent.config)
    if state is None:
        return None
    resolved = file_path.resolve()
    if file_path.suffix == ".py" and resolved in state.snippets:
        return SnippetFile.from_parent(parent, path=file_path)
    if file_path.suffix == ".md" and resolved.is_relative_to(state.project.vault_dir.resolve()):
        return NoteFile.from_parent(parent, path=file_path)
    return None


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    """Keep a snippet whose name matches ``python_files`` from also running as a test module."""
    state = _state(parent.config)
    if state is not None and module_path.resolve() in state.snippets:
        return _NoTests.from_parent(parent, path=module_path)
    return None


class _NoTests(pytest.File):
    def collect(self) -> list[pytest.Item]:
        return []


class SnippetFailure(Exception):
    """A unit whose code raised, timed out or crashed its kernel."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.error)
        self.result = result


class SnippetFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        state = _state(self.config)
        assert state is not None
        try:
            unit = read_snippet(self.path, state.project.root)
        except SnippetError as error:
            raise self.CollectError(str(error)) from None
        return [UnitItem.from_parent(self, name=self.path.name, unit=unit)]


class NoteFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        state = _state(self.config)
        assert state is not None
        # The vault's own parse gives the vault-relative label and skips hidden folders.
        vault = state.project.vault
        relative = self.path.resolve().relative_to(state.project.vault_dir.resolve()).as_posix()
        note = vault.notes.get(relative)
        if note is None:
            return []
        # Reports name the note relative to pytest's rootdir, like pytest's own locations.
        label = self.path.resolve().relative_to(self.config.rootpath.resolve()).as_posix() \
            if self.path.resolve().is_relative_to(self.config.rootpath.resolve()) else relative
        units = units_from_note(note, self.path, label=label)
        return [UnitItem.from_parent(self, name=f"line{unit.line}", unit=unit) for unit in units]


class UnitItem(pytest.Item):
    def __init__(self, *, unit: RunUnit, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unit = unit

    def runtest(self) -> None:
        state = _state(self.config)
        assert state is not None
        result = state.runner.run_unit(self.unit)
        strict = self.config.getoption("kb_strict", False)
        if result.status == "passed":
            return
        # _use_item_location makes pytest report the skip at the note or snippet line.
        if result.status == "skipped":
            raise pytest.skip.Exception(result.error or "skipped", _use_item_location=True)
        if result.status in ("missing-dependency", "fragment") and not strict:
            raise pytest.skip.Exception(f"{result.status}: {result.error}", _use_item_location=True)
        raise SnippetFailure(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, SnippetFailure):
            result = excinfo.value.result
            lines = [f"{result.location}: {result.status}: {result.error}"]
            if result.traceback:
                lines += ["", result.traceback]
            return "\n".join(lines)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.unit.line - 1, self.unit.name
