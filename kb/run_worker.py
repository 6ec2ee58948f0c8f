"""Child process that executes one notebook in a fresh Jupyter kernel.

``python -m kb.run_worker JOB.json`` reads the job the runner wrote, executes the notebook with
nbclient and writes ``executed.ipynb`` and ``outcome.json`` next to the job file. The runner
classifies the outcome; this process only records what the kernel reported. Keeping execution in
a child process lets the runner kill the worker, the kernel and everything the snippet started
as one process tree.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import psutil
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output

MAX_SOCKET_PREFIX = 90
"""Maximum bytes of the IPC socket path prefix, to which jupyter_client appends ``-N`` per channel."""


def kill_process_tree(pid: int, include_root: bool = True) -> None:
    """Kill ``pid`` and all its descendants, including those that started a new session.

    Descendants are listed before anything is killed, because a child whose parent dies is
    re-parented and no longer shows up in the tree.
    """
    try:
        root = psutil.Process(pid)
        victims = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    if include_root:
        victims.append(root)
    # A process whose parent already exited is no longer in the tree, but it stays in the
    # process group it was born in, so the groups led by the victims are killed as well.
    groups = {process.pid for process in victims if _leads_group(process.pid)}
    groups.discard(os.getpgrp())
    for process in victims:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    psutil.wait_procs(victims, timeout=5)


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


class CappedClient(NotebookClient):
    """NotebookClient that keeps at most ``output_cap`` bytes of outputs per notebook.

    Outputs past the cap are dropped as they arrive and the cell gets a note saying so. Error
    outputs are always kept. The whole run shares one deadline of ``total_timeout`` seconds,
    counted from the start of the first cell.
    """

    def __init__(self, nb: Any, *, output_cap: int, total_timeout: float, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.output_cap = output_cap
        self.output_bytes = 0
        self.truncated_cells: set[int] = set()
        self.total_timeout = total_timeout
        self.deadline: float | None = None
        self.timeout_func = self._remaining_time
        self.current_cell: int | None = None
        self.timed_out = False

    def _remaining_time(self, cell: Any) -> int:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.total_timeout
        # nbclient treats 0 and negative timeouts as "no timeout", so at least 1 s is returned.
        return max(1, round(self.deadline - time.monotonic()))

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
        if msg["msg_type"] == "error":
            return super().output(outs, msg, display_id, cell_index)
        size = _message_size(msg)
        room = self.output_cap - self.output_bytes
        if size <= room:
            self.output_bytes += size
            return super().output(outs, msg, display_id, cell_index)
        self.truncated_cells.add(cell_index)
        self.output_bytes = self.output_cap
        if msg["msg_type"] == "stream" and room > 0:
            # Keep the head of a long stream rather than nothing at all.
            head = {**msg, "content": {**msg["content"], "text": msg["content"]["text"][:room]}}
            return super().output(outs, head, display_id, cell_index)
        return None

    async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        self.current_cell = cell_index
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            if cell_index in self.truncated_cells:
                note = f"[kb: output past {self.output_cap} bytes was dropped]\n"
                cell.outputs.append(new_output("stream", name="stderr", text=note))

    async def _async_handle_timeout(self, timeout: int, cell: Any = None) -> Any:
        self.timed_out = True
        return await super()._async_handle_timeout(timeout, cell)

    async def _async_cleanup_kernel(self) -> None:
        # The kernel's own shutdown kills only its process group. A snippet's children that
        # started their own session would outlive it, so the whole tree goes first. A kernel
        # still busy after a timeout cannot handle a shutdown request, so it is killed as well.
        provisioner = getattr(self.km, "provisioner", None) if self.km else None
        pid = getattr(provisioner, "pid", None)
        if pid:
            kill_process_tree(pid, include_root=self.timed_out)
        await super()._async_cleanup_kernel()


def _message_size(msg: dict) -> int:
    content = msg.get("content", {})
    if "text" in content:
        return len(content["text"])
    data = content.get("data", {})
    return sum(len(value) if isinstance(value, str) else len(json.dumps(value)) for value in data.values())


def _code_index(nb: Any, cell_index: int | None) -> int | None:
    """Convert a notebook cell index into an index among code cells."""
    if cell_index is None:
        return None
    return sum(1 for cell in nb.cells[:cell_index] if cell.cell_type == "code")


def _error_of(nb: Any) -> tuple[int | None, dict | None]:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, output
    return None, None


def execute(job: dict[str, Any], job_dir: Path) -> dict[str, Any]:
    """Execute the job's notebook and return the outcome record."""
    nb = nbformat.read(job_dir / "input.ipynb", as_version=4)

    # Unix sockets in the job folder keep the kernel off TCP ports. Their paths are limited to
    # about 107 bytes on Linux, so a long temporary folder falls back to TCP on loopback.
    socket_prefix = str(job_dir / "kernel")
    if len(socket_prefix.encode()) <= MAX_SOCKET_PREFIX:
        kernel_manager = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=socket_prefix)
    else:
        kernel_manager = AsyncKernelManager(kernel_name="python3", transport="tcp", ip="127.0.0.1")

    client = CappedClient(
        nb,
        km=kernel_manager,
        output_cap=job["output_cap"],
        total_timeout=job["timeout"],
        kernel_name="python3",
        allow_errors=False,
        record_timing=False,
        startup_timeout=job["startup_timeout"],
        resources={"metadata": {"path": job["cwd"]}},
    )
    outcome: dict[str, Any] = {"status": "ok", "cell": None, "ename": None, "evalue": None, "traceback": []}
    started = time.monotonic()
    try:
        # nbclient shuts down a kernel manager passed in by the caller only with cleanup_kc=True.
        client.execute(cleanup_kc=True)
    except CellTimeoutError:
        outcome.update(status="timeout", cell=_code_index(nb, client.current_cell))
    except DeadKernelError as error:
        outcome.update(status="dead", cell=_code_index(nb, client.current_cell), evalue=str(error))
    except CellExecutionError:
        index, output = _error_of(nb)
        outcome.update(status="error", cell=_code_index(nb, index))
        if output is not None:
            outcome.update(ename=output["ename"], evalue=output["evalue"], traceback=output["traceback"])

    outcome["duration"] = time.monotonic() - started
    outcome["truncated"] = bool(client.truncated_cells)
    nbformat.write(nb, job_dir / "executed.ipynb")
    return outcome


def main(argv: list[str]) -> int:
    job_file = Path(argv[0])
    job = json.loads(job_file.read_text(encoding="utf-8"))
    outcome = execute(job, job_file.parent)
    (job_file.parent / "outcome.json").write_text(json.dumps(outcome), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
