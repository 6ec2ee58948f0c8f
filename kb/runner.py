"""Execution engine: runs units in Jupyter kernels, classifies the outcome, caches results.

``kb run``, the pytest plugin and the site build all go through :class:`Runner`, so a unit runs
under the same rules everywhere:

- Each unit runs in a fresh ``python3`` kernel started by its own worker process
  (``kb.run_worker``), with the working directory set to the snippet's folder, or for a fence the
  note's folder, and the project root first on ``PYTHONPATH``.
- Code that is not valid Python is rejected before any kernel starts, so IPython magics and
  shell escapes such as ``!pip install`` never run. Every kernel gets a private, temporary
  IPython profile with automagic off.
- In that profile, Python's ``socket`` module refuses connections to hosts other than loopback.
  Sockets opened from C extensions or from subprocesses are not covered by that guard.
- ``timeout`` bounds all cells together. When it passes, the worker, the kernel and every
  process the code started are killed as one tree.
- Outputs are kept up to ``output_cap`` bytes per unit and dropped after that.
- Results are cached by :func:`kb.run_cache.cache_key`; a lock per key makes concurrent runners
  (``-j N``, pytest-xdist, a site build) execute each key once.
- Every execution appends ``time<TAB>unit<TAB>key<TAB>pid`` to ``.kb/run.log``.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from kb.run_cache import ResultCache, cache_key
from kb.run_worker import kill_process_tree
from kb.snippets import RunUnit, binds_name, undefined_name

__all__ = [
    "DEFAULT_OUTPUT_CAP",
    "RunResult",
    "Runner",
    "UntrustedCodeError",
    "STATUSES",
]

STATUSES = ("passed", "failed", "skipped", "missing-dependency", "fragment")
DEFAULT_OUTPUT_CAP = 4 * 1024 * 1024
"""Bytes of outputs kept per unit: text, plus the base64 text of images."""
KERNEL_STARTUP_TIMEOUT = 60
"""Seconds a kernel may take to start, on top of the unit's own timeout."""
SHUTDOWN_ALLOWANCE = 15
"""Seconds the worker may take to shut its kernel down and write its files."""

# PyPI names of modules whose import name differs from the package to install.
PACKAGE_NAMES = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "imblearn": "imbalanced-learn",
    "deep_translator": "deep-translator",
    "stable_baselines3": "stable-baselines3",
}

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CELL_FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)")
MISSING_MODULE = re.compile(r"No module named '([^']+)'")

KERNEL_CONFIG = """\
c.InteractiveShell.automagic = False
c.HistoryManager.enabled = False
"""

# Kernel startup file that stops forwarding stdout and stderr a little past the output cap.
# The runner drops outputs past the cap too, but only after the kernel has sent them: a
# snippet printing hundreds of MB would otherwise fill both processes with queued messages.
# The margin lets the runner see more than the cap, so it marks the unit truncated.
OUTPUT_CAP_STARTUP = """\
def _kb_cap_streams(limit):
    import sys

    sent = [0]
    for stream in (sys.stdout, sys.stderr):
        def capped(text, _write=stream.write):
            room = limit - sent[0]
            sent[0] += len(text)
            if room > 0:
                _write(text[:room])
            return len(text)

        # Output written to file descriptors 1 and 2 reaches this method too.
        stream.write = capped


_kb_cap_streams({limit})
del _kb_cap_streams
"""
OUTPUT_CAP_MARGIN = 4096

OFFLINE_STARTUP = '''\
"""Refuse network connections to hosts other than loopback while kb runs a snippet."""
import ipaddress as _kb_ipaddress
import socket as _kb_socket


def _kb_is_loopback(host):
    if host in ("localhost", "", None):
        return True
    try:
        return _kb_ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _kb_guard(address):
    if isinstance(address, tuple) and address and not _kb_is_loopback(address[0]):
        raise ConnectionRefusedError(
            f"network access to {address[0]!r} is disabled while kb runs snippets; "
            "declare local data files in the snippet header instead"
        )


def _kb_wrap_connect(original):
    def connect(self, address):
        _kb_guard(address)
        return original(self, address)
    return connect


def _kb_wrap_getaddrinfo(original):
    def getaddrinfo(host, *args, **kwargs):
        _kb_guard((host,))
        return original(host, *args, **kwargs)
    return getaddrinfo


_kb_socket.socket.connect = _kb_wrap_connect(_kb_socket.socket.connect)
_kb_socket.socket.connect_ex = _kb_wrap_connect(_kb_socket.socket.connect_ex)
_kb_socket.getaddrinfo = _kb_wrap_getaddrinfo(_kb_socket.getaddrinfo)
del _kb_wrap_connect, _kb_wrap_getaddrinfo
'''


class UntrustedCodeError(PermissionError):
    """Code outside the project was about to run without ``trust``."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path
        """Resolved path of the file whose code was not run."""


@dataclass(slots=True)
class RunResult:
    """Outcome of one unit, with locations mapped onto its current file."""

    unit: RunUnit
    status: str
    """One of :data:`STATUSES`."""
    error: str | None = None
    """One-line summary, e.g. ``ZeroDivisionError: division by zero``."""
    location: str | None = None
    """``label:line`` of the failing line, when known."""
    traceback: str | None = None
    """The kernel's traceback without colour codes, with cell references replaced by file lines."""
    missing_package: str | None = None
    duration: float = 0.0
    cached: bool = False
    executed: bool = False
    key: str | None = None
    notebook: Path | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _build_notebook(unit: RunUnit) -> Any:
    cells = []
    for cell in unit.cells:
        metadata = {"title": cell.title} if cell.title else {}
        if cell.kind == "code":
            cells.append(new_code_cell(cell.source, metadata=metadata))
        else:
            cells.append(new_markdown_cell(cell.source, metadata=metadata))
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["kb"] = {"source": unit.name}
    return notebook


def _syntax_problem(unit: RunUnit) -> dict[str, Any] | None:
    """Return a worker-style outcome for the first code cell that is not valid Python, else None."""
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    for index, cell in enumerate(unit.code_cells):
        try:
            compile(cell.source, unit.name, "exec", flags=flags)
        except SyntaxError as error:
            return {
                "status": "syntax",
                "ename": type(error).__name__,
                "evalue": error.msg,
                "cell": index,
                "line": error.lineno or 1,
                "traceback": [],
            }
    return None


def _summary(classified: dict[str, Any]) -> str | None:
    """Return the one-line error of a classified outcome, or None when it passed."""
    if classified["status"] == "passed":
        return None
    ename = classified["ename"] or "Error"
    evalue = (classified["evalue"] or "").strip()
    summary = f"{ename}: {evalue}" if evalue else ename
    if classified["status"] == "missing-dependency":
        summary = f"{summary}; install {classified['missing_package']}"
    elif classified["status"] == "fragment":
        summary = f"{summary}; the fence is not complete code on its own"
    return summary.splitlines()[0]


def _missing_module(evalue: str) -> str | None:
    match = MISSING_MODULE.search(evalue or "")
    return match.group(1) if match else None


class Runner:
    """Run units with caching, timeouts, output caps and ``jobs`` parallel kernels.

    ``trusted_dirs`` are the folders whose code may run without ``trust``: the project's
    snippets folder and vault. Code elsewhere raises :class:`UntrustedCodeError` unless
    ``trust`` is set.
    """

    def __init__(
        self,
        root: Path,
        *,
        cache_dir: Path | None = None,
        trusted_dirs: Iterable[Path] | None = None,
        trust: bool = False,
        force: bool = False,
        jobs: int = 1,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        startup_timeout: float = KERNEL_STARTUP_TIMEOUT,
    ) -> None:
        self.root = Path(root).resolve()
        self.kb_dir = (Path(cache_dir) if cache_dir else self.root / ".kb").resolve()
        self.cache = ResultCache(self.kb_dir / "cache")
        self.log_path = self.kb_dir / "run.log"
        trusted = [self.root] if trusted_dirs is None else trusted_dirs
        self.trusted_dirs = [Path(folder).resolve() for folder in trusted]
        self.trust = trust
        self.force = force
        self.jobs = max(1, jobs)
        self.output_cap = output_cap
        self.startup_timeout = startup_timeout
        self._workers: set[subprocess.Popen] = set()
        self._workers_lock = threading.Lock()
        self._forced: set[str] = set()

    # Public API ----------------------------------------------------------------------------

    def check_trusted(self, unit: RunUnit) -> None:
        """Raise UntrustedCodeError when ``unit`` lies outside the trusted folders."""
        if self.trust:
            return
        path = unit.path.resolve()
        if not any(path.is_relative_to(folder) for folder in self.trusted_dirs):
            if self.trusted_dirs:
                folders = ", ".join(str(folder) for folder in self.trusted_dirs)
                where = f"is outside the folders whose code kb runs ({folders})"
            else:
                where = "is in a folder whose code kb runs only when asked"
            raise UntrustedCodeError(
                f"untrusted code not run: {path} {where}. If you trust it, pass --trust to "
                "run it",
                path,
            )

    def run(
        self,
        units: list[RunUnit],
        on_result: Callable[[RunResult], None] | None = None,
    ) -> list[RunResult]:
        """Run ``units`` with up to ``jobs`` kernels at once; return results in input order.

        Every unit is checked for trust before any of them runs.
        """
        for unit in units:
            self.check_trusted(unit)

        def run_and_report(unit: RunUnit) -> RunResult:
            result = self.run_unit(unit)
            if on_result is not None:
                on_result(result)
            return result

        if self.jobs == 1 or len(units) <= 1:
            return [run_and_report(unit) for unit in units]
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                return list(pool.map(run_and_report, units))
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                self.kill_workers()
                raise

    def run_unit(self, unit: RunUnit) -> RunResult:
        """Return the result of ``unit``: from the cache when current, else by executing it."""
        self.check_trusted(unit)
        if unit.skip_reason is not None:
            return RunResult(unit=unit, status="skipped", error=unit.skip_reason)

        problem = _syntax_problem(unit)
        if problem is not None:
            return self._result_from_record(unit, {"outcome": problem}, key=None, cached=False, executed=False)

        key = cache_key(unit, self.root)
        with self.cache.lock(key):
            record = self.cache.get(key)
            # With force, a key executes once per Runner even when several units share it.
            if record is not None and not (self.force and key not in self._forced):
                return self._result_from_record(unit, record, key=key, cached=True, executed=False)
            self._forced.add(key)
            record = self._execute(unit, key)
        return self._result_from_record(unit, record, key=key, cached=False, executed=True)

    def result_for(self, unit: RunUnit) -> RunResult | None:
        """Return the cached result of ``unit`` for its current key without running anything."""
        if unit.skip_reason is not None:
            return RunResult(unit=unit, status="skipped", error=unit.skip_reason)
        problem = _syntax_problem(unit)
        if problem is not None:
            return self._result_from_record(unit, {"outcome": problem}, key=None, cached=False, executed=False)
        key = cache_key(unit, self.root)
        record = self.cache.get(key)
        if record is None:
            return None
        return self._result_from_record(unit, record, key=key, cached=True, executed=False)

    def kill_workers(self) -> None:
        """Kill every worker process tree this runner started that is still running."""
        with self._workers_lock:
            workers = list(self._workers)
        for process in workers:
            kill_process_tree(process.pid)

    # Execution -----------------------------------------------------------------------------

    def _prepare_job_dir(self, unit: RunUnit) -> Path:
        job_dir = Path(tempfile.mkdtemp(prefix="kb-run-"))
        profile = job_dir / "ipython" / "profile_default"
        (profile / "startup").mkdir(parents=True)
        # As under `python snippet.py`, __file__ names the file being run: the snippet or note.
        # Startup files cannot set it because IPython restores __file__ after each of them.
        define_file = f"__file__ = {str(unit.path)!r}"
        config = KERNEL_CONFIG + f"c.InteractiveShellApp.exec_lines = [{define_file!r}]\n"
        (profile / "ipython_kernel_config.py").write_text(config, encoding="utf-8")
        (profile / "startup" / "00-kb-offline.py").write_text(OFFLINE_STARTUP, encoding="utf-8")
        stream_cap = OUTPUT_CAP_STARTUP.format(limit=self.output_cap + OUTPUT_CAP_MARGIN)
        (profile / "startup" / "01-kb-output-cap.py").write_text(stream_cap, encoding="utf-8")
        (job_dir / "runtime").mkdir()
        nbformat.write(_build_notebook(unit), job_dir / "input.ipynb")
        job = {
            "cwd": str(unit.cwd),
            "timeout": unit.timeout,
            "startup_timeout": self.startup_timeout,
            "output_cap": self.output_cap,
        }
        (job_dir / "job.json").write_text(json.dumps(job), encoding="utf-8")
        return job_dir

    def _environment(self, job_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        python_path = [str(self.root)]
        if env.get("PYTHONPATH"):
            python_path.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(python_path)
        env["IPYTHONDIR"] = str(job_dir / "ipython")
        env["JUPYTER_RUNTIME_DIR"] = str(job_dir / "runtime")
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        env.pop("MPLBACKEND", None)  # the kernel's inline backend captures figures as PNG
        if self.jobs > 1 and "OMP_NUM_THREADS" not in env:
            # Parallel kernels share the cores instead of each starting one thread per core.
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.jobs))
        return env

    def _log_execution(self, unit: RunUnit, key: str, pid: int) -> None:
        self.kb_dir.mkdir(parents=True, exist_ok=True)
        line = f"{_now()}\t{unit.name}\t{key}\t{pid}\n"
        # One write per line on a file opened for appending keeps lines whole across processes.
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def _execute(self, unit: RunUnit, key: str) -> dict[str, Any]:
        """Execute ``unit`` in a worker, store the outcome under ``key`` and return the record."""
        job_dir = self._prepare_job_dir(unit)
        started = time.monotonic()
        timestamp = _now()
        try:
            with (job_dir / "worker.log").open("wb") as worker_log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "kb.run_worker", str(job_dir / "job.json")],
                    cwd=unit.cwd,
                    env=self._environment(job_dir),
                    stdin=subprocess.DEVNULL,
                    stdout=worker_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            with self._workers_lock:
                self._workers.add(process)
            self._log_execution(unit, key, process.pid)
            limit = unit.timeout + self.startup_timeout + SHUTDOWN_ALLOWANCE
            try:
                process.wait(timeout=limit)
                outcome = self._read_outcome(job_dir, process.returncode)
            except subprocess.TimeoutExpired:
                kill_process_tree(process.pid)
                process.wait()
                outcome = {"status": "timeout", "cell": None}
            finally:
                with self._workers_lock:
                    self._workers.discard(process)
            outcome["timeout"] = unit.timeout
            classified = self._classify(unit, outcome)
            # status and error are for readers of result.json; results are classified again
            # from the raw outcome when read, so classification fixes apply without re-running.
            record = {
                "status": classified["status"],
                "error": _summary(classified),
                "duration": time.monotonic() - started,
                "timestamp": timestamp,
                "unit": unit.name,
                "truncated": bool(outcome.get("truncated")),
                "outcome": outcome,
            }
            notebook = job_dir / "executed.ipynb"
            self.cache.put(key, record, notebook if notebook.is_file() else None)
            return record
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    def _read_outcome(self, job_dir: Path, returncode: int) -> dict[str, Any]:
        try:
            return json.loads((job_dir / "outcome.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log_text = (job_dir / "worker.log").read_text(encoding="utf-8", errors="replace")
            last_lines = "\n".join(log_text.strip().splitlines()[-5:])
            return {"status": "crashed", "evalue": f"worker exited with code {returncode}: {last_lines}"}

    def _classify(self, unit: RunUnit, outcome: dict[str, Any]) -> dict[str, Any]:
        """Derive the status, error and error position of a worker outcome.

        Returns a dict with ``status`` (one of :data:`STATUSES`), ``ename``, ``evalue``,
        ``cell`` and ``line`` (0-based code cell, 1-based line in it), ``execution_count``,
        ``traceback`` (text without colour codes) and ``missing_package``.
        """
        traceback = outcome.get("traceback") or []
        if isinstance(traceback, list):
            traceback = "\n".join(traceback)
        classified: dict[str, Any] = {
            "status": "passed",
            "ename": outcome.get("ename"),
            "evalue": outcome.get("evalue"),
            "cell": outcome.get("cell"),
            "line": outcome.get("line"),
            "execution_count": None,
            "traceback": ANSI_ESCAPE.sub("", traceback),
            "missing_package": None,
        }
        state = outcome.get("status")
        if state == "ok":
            return classified
        classified["status"] = "failed"
        if state == "syntax":
            if unit.kind == "fence":
                classified["status"] = "fragment"
            return classified
        if state == "timeout":
            classified["ename"] = "TimeoutError"
            classified["evalue"] = f"timed out after {outcome.get('timeout', unit.timeout):g} s"
            return classified
        if state == "dead":
            classified["ename"] = "DeadKernelError"
            classified["evalue"] = "the kernel died (crash, os._exit or out of memory)"
            return classified
        if state != "error":
            classified["ename"] = "RunnerError"
            return classified

        ename = classified["ename"] or ""
        evalue = classified["evalue"] or ""
        frames = CELL_FRAME.findall(classified["traceback"])
        if frames:
            classified["execution_count"] = int(frames[-1][0])
            classified["line"] = int(frames[-1][1])
        module = _missing_module(evalue) if ename == "ModuleNotFoundError" else None
        if module is not None and not self._is_local_module(unit, module):
            classified["status"] = "missing-dependency"
            top = module.split(".")[0]
            classified["missing_package"] = PACKAGE_NAMES.get(top, top)
        elif unit.kind == "fence" and ename == "NameError":
            name = undefined_name(evalue)
            sources = [cell.source for cell in unit.code_cells]
            if name is not None and not binds_name(sources, name):
                classified["status"] = "fragment"
        elif unit.kind == "fence" and ename in ("SyntaxError", "IndentationError", "TabError"):
            classified["status"] = "fragment"
        return classified

    def _is_local_module(self, unit: RunUnit, module: str) -> bool:
        top = module.split(".")[0]
        for folder in (unit.cwd, self.root):
            if (folder / top).is_dir() or (folder / f"{top}.py").is_file():
                return True
        return False

    # Results -------------------------------------------------------------------------------

    def _result_from_record(
        self, unit: RunUnit, record: dict[str, Any], *, key: str | None, cached: bool, executed: bool
    ) -> RunResult:
        notebook = self.cache.notebook_path(key) if key else None
        classified = self._classify(unit, record["outcome"])
        result = RunResult(
            unit=unit,
            status=classified["status"],
            missing_package=classified["missing_package"],
            duration=record.get("duration", 0.0),
            cached=cached,
            executed=executed,
            key=key,
            notebook=notebook if notebook is not None and notebook.is_file() else None,
            truncated=bool(record.get("truncated")),
        )
        if result.status == "passed":
            return result

        execution_counts = self._execution_counts(result.notebook)
        cell = classified["cell"]
        count = classified["execution_count"]
        if count is not None and count in execution_counts:
            cell = execution_counts[count]
        line = None
        if cell is not None and cell < len(unit.code_cells):
            line = unit.location_of(cell, classified["line"] or 1)
        result.location = f"{unit.label}:{line if line is not None else unit.line}"
        result.error = _summary(classified)
        result.traceback = self._remap_traceback(unit, classified["traceback"], execution_counts)
        return result

    @staticmethod
    def _execution_counts(notebook: Path | None) -> dict[int, int]:
        """Map each execution count to its code-cell index in an executed notebook."""
        if notebook is None:
            return {}
        try:
            nb = nbformat.read(notebook, as_version=4)
        except (OSError, ValueError):
            return {}
        counts: dict[int, int] = {}
        code_index = 0
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if cell.get("execution_count") is not None:
                counts[cell.execution_count] = code_index
            code_index += 1
        return counts

    @staticmethod
    def _remap_traceback(unit: RunUnit, traceback: str, counts: dict[int, int]) -> str:
        def replace(match: re.Match[str]) -> str:
            count, line = int(match.group(1)), int(match.group(2))
            cell = counts.get(count, count - 1)
            if 0 <= cell < len(unit.code_cells):
                return f"{unit.label}:{unit.location_of(cell, line)}"
            return match.group(0)

        return CELL_FRAME.sub(replace, traceback)
