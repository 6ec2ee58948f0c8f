"""Snippet output for the study site: embeds with real outputs, and one notebook page per snippet.

The MkDocs plugin calls these functions; nothing here depends on MkDocs. Outputs always come
from the cache entry of the snippet's current key, so an edited snippet is executed again
before it is shown, and the outputs of a failed run are never shown as if they were current.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nbformat

from kb.project import Project
from kb.runner import RunResult, Runner
from kb.snippets import Cell, RunUnit, read_snippet, snippet_files

__all__ = [
    "SnippetPage",
    "SnippetRenderError",
    "render_embed",
    "site_runner",
    "write_notebook_pages",
]

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# NOTE: torch's CPU profiler (torch 2.13, Kineto) prints lines such as
# "USDT:2026-12-04 20:36:59 1396:1396 SyncActivityProfilerHandler.cpp:52] profiler_start"
# to stdout on every profiled region. They are tracing probes, not output of the snippet, so
# the site drops them; ``kb run`` and the cached notebook keep them.
NOISE_LINE = re.compile(r"^USDT:.*\] profiler_(?:start|stop)\n?$", re.M)

_log = logging.getLogger(__name__)


class SnippetRenderError(RuntimeError):
    """A snippet embedded in the site failed, or the embed names a cell that does not exist."""


class SnippetFailedError(SnippetRenderError):
    """The embedded snippet ran and failed (its outputs are not current)."""


@dataclass(frozen=True, slots=True)
class SnippetPage:
    snippet: Path
    notebook: Path
    """Executed notebook written for mkdocs-jupyter to render (with ``execute: false``)."""
    src_uri: str
    """Docs-relative path the page should have, e.g. ``snippets/attention.ipynb``."""
    title: str


def site_runner(project: Project) -> Runner:
    """Return a runner over ``project``'s own snippets and vault, sharing ``kb run``'s cache."""
    return Runner(
        project.root,
        cache_dir=project.cache_dir,
        trusted_dirs=[project.snippets_dir, project.vault_dir],
    )


def _current_result(unit: RunUnit, runner: Runner, logger: Any = _log) -> RunResult:
    """Return the cached result for the unit's current key, executing the unit when absent.

    Each execution is logged at INFO with its duration, since a first build can spend minutes
    running snippets.
    """
    cached = runner.result_for(unit)
    if cached is not None:
        return cached
    started = time.perf_counter()
    result = runner.run_unit(unit)
    logger.info("executed snippet %s in %.1f s (%s)", unit.label, time.perf_counter() - started,
                result.status)
    return result


def _fence(text: str, lang: str) -> str:
    """Return ``text`` in a fenced block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{lang}\n{text.rstrip(chr(10))}\n{marks}"


def _stream_block(text: str) -> str | None:
    """Return printed text as a plain output block: no highlighting and no copy button."""
    text = NOISE_LINE.sub("", ANSI_ESCAPE.sub("", text))
    if not text.strip():
        return None
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{{.text .kb-stream .no-copy}}\n{text.rstrip(chr(10))}\n{marks}"


def _merge_streams(outputs: list[Any]) -> list[Any]:
    """Join consecutive stream outputs (stdout and stderr) into one, so that a table printed
    in pieces shows as one block."""
    merged: list[Any] = []
    for output in outputs:
        if output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream":
            merged[-1] = {"output_type": "stream", "text": merged[-1]["text"] + _stream_text(output)}
        elif output.get("output_type") == "stream":
            merged.append({"output_type": "stream", "text": _stream_text(output)})
        else:
            merged.append(output)
    return merged


def _stream_text(output: Any) -> str:
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else text


def _render_output(output: Any) -> str | None:
    kind = output.get("output_type")
    if kind == "stream":
        return _stream_block(_stream_text(output))
    if kind not in ("display_data", "execute_result"):
        return None
    data = output.get("data", {})
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            payload = data[mime].replace("\n", "")
            return f'<img class="kb-output" alt="output figure" src="data:{mime};base64,{payload}">'
    if "image/svg+xml" in data:
        svg = data["image/svg+xml"]
        encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
        return f'<img class="kb-output" alt="output figure" src="data:image/svg+xml;base64,{encoded}">'
    if "text/html" in data:
        return f'<div class="kb-output">\n{data["text/html"]}\n</div>'
    if "text/markdown" in data:
        return data["text/markdown"]
    if "text/plain" in data:
        return _fence(ANSI_ESCAPE.sub("", data["text/plain"]), "text")
    return None


def _select_cells(unit: RunUnit, cell_title: str | None) -> list[int]:
    """Return the code-cell indices to show: the one titled ``cell_title``, or all of them."""
    cells: list[Cell] = unit.code_cells
    if cell_title is None:
        return list(range(len(cells)))
    wanted = cell_title.strip().casefold()
    matches = [i for i, cell in enumerate(cells) if (cell.title or "").strip().casefold() == wanted]
    if not matches:
        titles = ", ".join(repr(cell.title) for cell in cells if cell.title) or "none"
        raise SnippetRenderError(
            f"{unit.label} has no cell titled {cell_title!r}; its cell titles are: {titles}"
        )
    return matches


def _failure_box(result: RunResult) -> str:
    body = f"{result.location}: {result.error}"
    if result.traceback:
        body += "\n\n" + _fence(result.traceback, "text")
    indented = "\n".join(f"    {line}" if line else "" for line in body.splitlines())
    return f'!!! failure "This snippet failed when the site was built"\n\n{indented}'


def render_embed(
    snippet_path: Path,
    cell_title: str | None = None,
    *,
    project: Project | None = None,
    runner: Runner | None = None,
    on_failure: Literal["raise", "warn"] = "raise",
    logger: Any = _log,
) -> str:
    """Return Markdown that shows a snippet's code, highlighted as Python, with its outputs.

    ``cell_title`` picks the cell titled so (``# %% Title``), compared without case; without it
    every code cell is shown. Figures are inlined as data URIs, HTML outputs (tables) as HTML.
    The snippet is executed when the cache has no result for its current code.

    A failed snippet raises :class:`SnippetRenderError` with its location and error, or with
    ``on_failure="warn"`` shows the code under a failure box and no outputs. A skipped snippet
    shows its code and the reason it did not run.
    """
    snippet_path = Path(snippet_path).resolve()
    project = project or Project.discover(start=snippet_path.parent)
    runner = runner or site_runner(project)
    unit = read_snippet(snippet_path, project.root)
    indices = _select_cells(unit, cell_title)
    result = _current_result(unit, runner, logger)

    code_blocks = [_fence(unit.code_cells[i].source, "python") for i in indices]
    if result.status == "skipped":
        note = f'!!! note "Not run"\n\n    {html.escape(result.error or "skipped")}'
        return "\n\n".join([*code_blocks, note]) + "\n"
    if result.status != "passed":
        if on_failure == "raise":
            raise SnippetFailedError(
                f"snippet {unit.label} failed ({result.status}) at {result.location}: {result.error}. "
                f"Run `kb run {unit.label}` to see the traceback"
            )
        return "\n\n".join([*code_blocks, _failure_box(result)]) + "\n"

    outputs = _code_cell_outputs(result.notebook)
    parts: list[str] = []
    for block, index in zip(code_blocks, indices):
        parts.append(block)
        for output in _merge_streams(outputs[index]) if index < len(outputs) else []:
            rendered = _render_output(output)
            if rendered:
                parts.append(rendered)
    return "\n\n".join(parts) + "\n"


def _code_cell_outputs(notebook: Path | None) -> list[list[Any]]:
    if notebook is None:
        return []
    nb = nbformat.read(notebook, as_version=4)
    return [cell.get("outputs", []) for cell in nb.cells if cell.cell_type == "code"]


def write_notebook_pages(
    project: Project,
    out_dir: Path,
    *,
    runner: Runner | None = None,
    on_failure: Literal["raise", "warn"] = "raise",
    logger: Any = _log,
) -> list[SnippetPage]:
    """Write each snippet's executed notebook to ``out_dir/snippets/NAME.ipynb`` for the site.

    Notebooks come from the cache (a snippet runs only when the cache has no current result),
    so mkdocs-jupyter must render them with ``execute: false``. A failed snippet raises
    :class:`SnippetRenderError`, or with ``on_failure="warn"`` gets no page.
    """
    runner = runner or site_runner(project)
    pages: list[SnippetPage] = []
    target_dir = Path(out_dir) / "snippets"
    target_dir.mkdir(parents=True, exist_ok=True)
    for path in snippet_files(project.snippets_dir):
        unit = read_snippet(path, project.root)
        result = _current_result(unit, runner, logger)
        if result.status != "passed" or result.notebook is None:
            if on_failure == "raise" and result.status != "skipped":
                raise SnippetRenderError(
                    f"snippet {unit.label} failed ({result.status}) at {result.location}: {result.error}"
                )
            continue
        nb = nbformat.read(result.notebook, as_version=4)
        title = _notebook_title(nb, path.stem)
        target = target_dir / f"{path.stem}.ipynb"
        nbformat.write(nb, target)
        pages.append(SnippetPage(snippet=path, notebook=target, src_uri=f"snippets/{path.stem}.ipynb", title=title))
    return pages


def _notebook_title(nb: Any, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback
