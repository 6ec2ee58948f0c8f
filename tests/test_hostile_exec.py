"""kb runs code only from the project's own snippets and vault, and bounds what that code can do.

Every piece of untrusted code writes a marker file when it runs, so "nothing ran" is checked on
the file system rather than on kb's own report. The runner tests use ``kb run`` in a separate
process, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from kb.project import Project
from kb.runner import DEFAULT_OUTPUT_CAP, Runner
from kb.snippets import snippet_units
from site_build import build_site

pytest_plugins = ["pytester"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def marker_code(marker: Path) -> str:
    return f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"


def kb(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180):
    return subprocess.run(
        [sys.executable, "-m", "kb.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root / "mkdocs.yml", "site_name: own\n")
    write(root / "docs" / "Own.md", "# Own\n")
    write(root / "snippets" / "__init__.py", "")
    return root


@pytest.fixture
def foreign(tmp_path: Path) -> tuple[Path, Path]:
    """A vault outside the project with a fence that writes a marker file when it runs."""
    vault = tmp_path / "foreign"
    marker = tmp_path / "foreign-ran"
    write(vault / "Other.md", "# Other\n\n```python\n" + marker_code(marker) + "```\n")
    return vault, marker


# Trust ---------------------------------------------------------------------------------------


def test_kb_run_rejects_foreign_vault(project, foreign, tmp_path):
    vault, marker = foreign
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    refused = kb("run", "--vault", str(vault), cwd=project, env=env)
    assert refused.returncode == 2
    assert "untrusted code not run" in refused.stderr
    assert str(vault / "Other.md") in refused.stderr
    assert "pass --trust to run the code of that vault" in refused.stderr
    assert not marker.exists()
    assert "Traceback" not in refused.stderr

    trusted = kb("run", "--trust", "--vault", str(vault), cwd=project, env=env)
    assert trusted.returncode == 0, trusted.stderr
    assert marker.read_text() == "ran"


def test_pytest_plugin_skips_foreign_notes(pytester, foreign):
    vault, marker = foreign
    pytester.makefile(".yml", mkdocs="site_name: own\n")
    pytester.mkdir("docs")
    (pytester.path / "docs" / "Own.md").write_text("# Own\n\n```python\nx = 1\n```\n")
    own = pytester.runpytest("--rootdir", str(pytester.path), "docs", "-p", "no:cacheprovider")
    own.assert_outcomes(passed=1)

    # pytest finds no collector for a note outside the project, so it reports the path and
    # runs nothing.
    other = pytester.runpytest(
        "--rootdir", str(pytester.path), str(vault / "Other.md"), "-p", "no:cacheprovider"
    )
    assert other.ret != 0
    other.assert_outcomes()
    assert "not found" in other.stderr.str()
    assert not marker.exists()


def test_site_build_runs_no_outside_snippet(tmp_path):
    marker = tmp_path / "outside-ran"
    write(tmp_path / "outside" / "evil.py", "# %%\n" + marker_code(marker))
    config = (
        "site_name: outside\ntheme:\n  name: material\n  font: false\n"
        "plugins:\n  - search\n  - kb:\n      snippets_dir: outside\n"
    )
    site = build_site(tmp_path, {"Host.md": "# Host\n\n![[evil.py]]\n"}, config=config)
    assert "Host" in site.article("Host.md")
    assert not marker.exists()

    # The same snippet moved under the project's own snippets/ folder is trusted and runs.
    project = tmp_path / "own"
    write(project / "snippets" / "good.py", "# %%\n" + marker_code(marker))
    config = (
        "site_name: own\ntheme:\n  name: material\n  font: false\n"
        "plugins:\n  - search\n  - kb\n"
    )
    build_site(project, {"Host.md": "# Host\n\n![[good.py]]\n"}, config=config)
    assert marker.read_text() == "ran"


# Limits --------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_timeout_kills_grandchildren(project, tmp_path, monkeypatch):
    """A snippet that outlives its timeout loses its child, its grandchild and an orphan whose
    parent already exited (reparented away from the tree, but still in the kernel's process group)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    pids = tmp_path / "pids.txt"
    sleeper = "import time; time.sleep(300)"
    record = f"open({str(pids)!r}, 'a').write(f'{{process.pid}} ')"
    # The child starts the grandchild and then sleeps itself.
    nested = f"import subprocess, sys, time; process = subprocess.Popen([sys.executable, '-c', {sleeper!r}]); {record}; time.sleep(300)"
    # The orphan's parent exits at once, so the orphan is no longer a descendant.
    orphaned = f"import subprocess, sys; process = subprocess.Popen([sys.executable, '-c', {sleeper!r}]); {record}"
    write(project / "snippets" / "spawner.py", f"""
        # kb: timeout=4
        # %%
        import subprocess, sys, time
        process = subprocess.Popen([sys.executable, "-c", {nested!r}])
        {record}
        subprocess.run([sys.executable, "-c", {orphaned!r}])
        time.sleep(300)
    """)
    units = snippet_units(project / "snippets", project)
    runner = Runner(project, cache_dir=project / ".kb", trusted_dirs=[project / "snippets"])
    started = time.monotonic()
    [result] = runner.run(units)
    assert time.monotonic() - started < 90
    assert result.status == "failed"
    assert result.error == "TimeoutError: timed out after 4 s"

    spawned = [int(pid) for pid in pids.read_text().split()]
    assert len(spawned) == 3
    time.sleep(0.5)
    survivors = [pid for pid in spawned if _alive(pid)]
    for pid in survivors:  # do not leave sleepers behind when the check fails
        psutil.Process(pid).kill()
    assert survivors == []
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_huge_output_capped(project, tmp_path):
    """A snippet printing 200 MB leaves a capped notebook, and kb's memory stays bounded."""
    write(project / "snippets" / "flood.py", """
        # kb: timeout=170
        # %%
        chunk = "x" * 1_000_000
        for _ in range(200):
            print(chunk)
        print("done")
    """)
    process = subprocess.Popen(
        [sys.executable, "-m", "kb.cli", "run"], cwd=project,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    peak = {"kb": 0, "workers": 0}

    def sample() -> None:
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                peak["kb"] = max(peak["kb"], watched.memory_info().rss)
                workers = watched.children(recursive=True)
                peak["workers"] = max(peak["workers"], max(
                    (child.memory_info().rss for child in workers), default=0
                ))
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = process.communicate(timeout=240)
    sampler.join()
    assert process.returncode == 0, stderr

    megabyte = 1 << 20
    # The kb process receives no output, and the kernel stops sending it past the cap.
    assert peak["kb"] < 200 * megabyte, peak
    assert peak["workers"] < 400 * megabyte, peak

    runner = Runner(project, cache_dir=project / ".kb", trusted_dirs=[project / "snippets"])
    [result] = [runner.result_for(unit) for unit in snippet_units(project / "snippets", project)]
    assert result is not None and result.truncated
    import nbformat

    outputs = nbformat.read(result.notebook, as_version=4).cells[0].outputs
    kept = sum(len(output.get("text", "")) for output in outputs)
    assert kept < DEFAULT_OUTPUT_CAP + 200
    assert "output past" in outputs[-1].text and "was dropped" in outputs[-1].text
    assert result.notebook.stat().st_size < 2 * DEFAULT_OUTPUT_CAP


def test_job_folders_removed(project, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    write(project / "snippets" / "ok.py", "# %%\nprint('ok')\n")
    write(project / "snippets" / "bad.py", "# %%\nraise ValueError('bad')\n")
    write(project / "snippets" / "syntax.py", "# %%\ndef broken(:\n")
    runner = Runner(project, cache_dir=project / ".kb", trusted_dirs=[project / "snippets"])
    results = {result.unit.name: result.status for result in runner.run(
        snippet_units(project / "snippets", project)
    )}
    assert results["snippets/ok.py"] == "passed"
    assert results["snippets/bad.py"] == "failed"
    assert list(scratch.iterdir()) == []
