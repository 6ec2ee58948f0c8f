"""The snippet runner end to end: real kernels on small projects built in temporary folders."""

from __future__ import annotations

import shutil
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from kb.cli import main as kb_main
from kb.parse import parse_note
from kb.project import Project
from kb.runner import Runner, UntrustedCodeError
from kb.site_snippets import SnippetRenderError, render_embed
from kb.snippets import SnippetError, note_units, parse_header, read_snippet, snippet_units, units_from_note

ML_NOTES = Path("/work/shared/vaults/ml-notes")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "mkdocs.yml").write_text("site_name: test\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    write(tmp_path / "snippets" / "__init__.py", "")
    return Project.discover(start=tmp_path)


def make_runner(project: Project, **options) -> Runner:
    return Runner(
        project.root,
        cache_dir=project.cache_dir,
        trusted_dirs=[project.snippets_dir, project.vault_dir],
        **options,
    )


def executions(project: Project) -> list[str]:
    """Return the unit names in .kb/run.log, one per execution."""
    log = project.cache_dir / "run.log"
    if not log.exists():
        return []
    return [line.split("\t")[1] for line in log.read_text(encoding="utf-8").splitlines()]


def all_units(project: Project):
    project = Project.discover(start=project.root)  # reload the vault after edits
    return [*snippet_units(project.snippets_dir, project.root), *note_units(project.vault)]


def run_all(project: Project, **options):
    return {result.unit.name: result for result in make_runner(project, **options).run(all_units(project))}


# Snippet format ------------------------------------------------------------------------------


def test_header_parses_all_keys():
    header = parse_header("# kb: timeout=12.5 gpu=optional data=data/a.csv,b.txt")
    assert header.timeout == 12.5
    assert header.gpu == "optional"
    assert header.data == ("data/a.csv", "b.txt")


@pytest.mark.parametrize("line", ["# kb: timeout=soon", "# kb: gpu=maybe", "# kb: colour=red", "# kb: timeout=-1"])
def test_header_rejects_invalid_values(line):
    with pytest.raises(SnippetError):
        parse_header(line, "snippets/x.py")


def test_snippet_cells_keep_titles_and_lines(project):
    path = write(project.snippets_dir / "cells.py", """
        # kb: timeout=5
        # %% [markdown]
        # Prose

        # %% First
        a = 1

        # %% Second
        b = 2
        # !pip install nothing
    """)
    unit = read_snippet(path, project.root)
    code = unit.code_cells
    assert [cell.title for cell in code] == ["First", "Second"]
    assert [cell.line for cell in code] == [6, 9]
    assert code[1].source == "b = 2\n# !pip install nothing"
    assert unit.timeout == 5
    assert unit.cwd == project.snippets_dir


def test_fence_options_skip_and_continue(tmp_path):
    text = textwrap.dedent("""
        ```python
        a = 1
        ```

        ```python continue
        b = a
        ```

        ```python skip slow on CPU
        c = 3
        ```

        ```python continue
        d = c
        ```

        ```text
        not code
        ```

            indented = "not run"
    """)
    note = parse_note(text, "Note.md")
    units = units_from_note(note, tmp_path / "Note.md")
    assert [len(unit.cells) for unit in units] == [2, 2]
    assert units[0].skip_reason is None
    assert units[1].skip_reason == "slow on CPU"
    assert units[0].cwd == tmp_path.resolve()


# Cache ---------------------------------------------------------------------------------------


def test_warm_rerun_executes_nothing(project):
    write(project.snippets_dir / "one.py", "# kb: timeout=30\n# %%\nprint(1)\n")
    write(project.vault_dir / "Note.md", "# Note\n\n```python\nprint(2)\n```\n")
    first = run_all(project)
    assert {r.status for r in first.values()} == {"passed"}
    assert sorted(executions(project)) == ["Note.md:3", "snippets/one.py"]

    second = run_all(project)
    assert all(result.cached and not result.executed for result in second.values())
    assert len(executions(project)) == 2


def test_prose_edit_executes_nothing(project):
    snippet = write(project.snippets_dir / "one.py", """
        # kb: timeout=30
        # %% [markdown]
        # Old prose.

        # %% Compute
        x = 40 + 2
        print(x)
    """)
    note = write(project.vault_dir / "Note.md", "# Note\n\n```python\nprint(2)\n```\n")
    run_all(project)
    assert len(executions(project)) == 2

    snippet.write_text(snippet.read_text().replace("Old prose.", "New prose,\n# two lines of it."))
    note.write_text("# Note\n\nA new paragraph\nabove the fence.\n\n```python\nprint(2)\n```\n")
    results = run_all(project)
    assert len(executions(project)) == 2
    assert results["Note.md:6"].cached


def test_helper_edit_reruns_exactly_dependants(project):
    base = write(project.snippets_dir / "_base.py", "OFFSET = 1\n")
    write(project.snippets_dir / "_scaling.py", "from snippets._base import OFFSET\n\ndef scale(x):\n    return 2 * x + OFFSET\n")
    write(project.snippets_dir / "uses_helper.py", "# kb: timeout=30\n# %%\nfrom snippets._scaling import scale\nprint(scale(1))\n")
    write(project.snippets_dir / "independent.py", "# kb: timeout=30\n# %%\nprint('alone')\n")
    write(project.vault_dir / "ml" / "Note.md", """
        ```python
        from snippets import _scaling
        print(_scaling.scale(2))
        ```

        ```python
        print("no imports")
        ```
    """)
    run_all(project)
    assert len(executions(project)) == 4

    base.write_text("OFFSET = 100\n")
    results = run_all(project)
    rerun = executions(project)[4:]
    assert sorted(rerun) == ["ml/Note.md:1", "snippets/uses_helper.py"]
    assert results["snippets/independent.py"].cached
    assert results["ml/Note.md:6"].cached


def test_data_file_edit_reruns_snippet(project):
    data = write(project.snippets_dir / "data" / "numbers.txt", "1\n2\n")
    write(project.snippets_dir / "reads.py", "# kb: timeout=30 data=data/numbers.txt\n# %%\nprint(open('data/numbers.txt').read())\n")
    run_all(project)
    data.write_text("3\n")
    run_all(project)
    assert executions(project) == ["snippets/reads.py", "snippets/reads.py"]


def test_force_reruns_cached_units(project):
    write(project.snippets_dir / "one.py", "# kb: timeout=30\n# %%\nprint(1)\n")
    run_all(project)
    results = run_all(project, force=True)
    assert results["snippets/one.py"].executed
    assert executions(project) == ["snippets/one.py", "snippets/one.py"]


# Outcomes ------------------------------------------------------------------------------------


def test_failing_fence_reports_note_line(project):
    write(project.vault_dir / "ml" / "Broken.md", """
        # Broken

        Some prose.

        ```python
        values = [1, 2, 3]
        ratio = values[0] / (values[1] - 2)
        ```
    """)
    results = run_all(project)
    result = results["ml/Broken.md:5"]
    assert result.status == "failed"
    assert result.location == "ml/Broken.md:7"
    assert result.error == "ZeroDivisionError: division by zero"
    assert "ml/Broken.md:7" in result.traceback
    assert "kb/" not in result.traceback


def test_outcome_classification(project):
    write(project.vault_dir / "Kinds.md", """
        ```python
        import surely_not_installed_pkg.sub
        ```

        ```python
        import sklearn_missing_alias
        ```

        ```python
        model.fit(X, y)
        ```

        ```python
        for item in items:
        ```

        ```python
        def f():
            return later
        later = 1
        del later
        f()
        ```

        ```python skip needs a dataset
        open("missing.csv")
        ```

        ```python
        total = 1
        ```

        ```python continue
        print(total + 1)
        ```
    """)
    results = run_all(project)
    by_line = {result.unit.line: result for result in results.values()}
    assert by_line[1].status == "missing-dependency"
    assert by_line[1].missing_package == "surely_not_installed_pkg"
    assert by_line[9].status == "fragment"
    assert by_line[13].status == "fragment"
    assert by_line[17].status == "failed"  # `later` is defined by the fence, so not a fragment
    assert by_line[25].status == "skipped"
    assert by_line[25].error == "needs a dataset"
    assert by_line[29].status == "passed"
    assert not by_line[13].executed  # invalid syntax is caught before any kernel starts


def test_missing_local_module_is_failure(project):
    write(project.snippets_dir / "imports_gone.py", "# kb: timeout=30\n# %%\nfrom snippets import gone_helper\n")
    result = run_all(project)["snippets/imports_gone.py"]
    assert result.status == "failed"
    assert "gone_helper" in result.error


def test_timeout_kills_process_tree(project, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    write(project.snippets_dir / "hangs.py", """
        # kb: timeout=3
        # %%
        import subprocess, sys, time
        sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
        child = subprocess.Popen(sleeper)
        detached = subprocess.Popen(sleeper, start_new_session=True)
        with open("pids.txt", "w") as handle:
            handle.write(f"{child.pid} {detached.pid}")
        time.sleep(300)
    """)
    started = time.monotonic()
    result = run_all(project)["snippets/hangs.py"]
    assert time.monotonic() - started < 60
    assert result.status == "failed"
    assert result.error == "TimeoutError: timed out after 3 s"
    pids = [int(pid) for pid in (project.snippets_dir / "pids.txt").read_text().split()]
    for pid in pids:
        alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        assert not alive, f"process {pid} survived the timeout"
    assert list(scratch.iterdir()) == []  # the job folder with the kernel's files is gone


def test_output_cap_truncates(project):
    write(project.snippets_dir / "loud.py", """
        # kb: timeout=60
        # %%
        for _ in range(100_000):
            print("x" * 99)
        print("end")
    """)
    result = run_all(project, output_cap=50_000)["snippets/loud.py"]
    assert result.status == "passed"
    assert result.truncated
    import nbformat

    outputs = nbformat.read(result.notebook, as_version=4).cells[0].outputs
    kept = sum(len(output.get("text", "")) for output in outputs)
    assert kept < 50_000 + 200
    assert "dropped" in outputs[-1].text


def test_network_is_refused(project):
    write(project.snippets_dir / "net.py", """
        # kb: timeout=30
        # %%
        import socket
        socket.create_connection(("192.0.2.1", 80), timeout=5)
    """)
    result = run_all(project)["snippets/net.py"]
    assert result.status == "failed"
    assert "network access" in result.error


def test_figures_and_results_are_captured(project):
    write(project.snippets_dir / "plot.py", """
        # kb: timeout=60
        # %%
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3])
        plt.show()
        6 * 7
    """)
    result = run_all(project)["snippets/plot.py"]
    import nbformat

    outputs = nbformat.read(result.notebook, as_version=4).cells[0].outputs
    kinds = Counter(output.output_type for output in outputs)
    assert kinds["display_data"] == 1
    assert "image/png" in outputs[0].data
    assert outputs[-1].data["text/plain"] == "42"


# Working directory ---------------------------------------------------------------------------


def make_losses_project(project: Project) -> None:
    """A note at docs/ml/Loss.md embeds a snippet that reads data/losses.csv."""
    write(project.snippets_dir / "data" / "losses.csv", "epoch,loss\n1,0.5\n2,0.25\n")
    write(project.snippets_dir / "losses.py", """
        # kb: timeout=30 data=data/losses.csv
        # %% Losses
        import os
        print(os.path.basename(os.getcwd()))
        print(open("data/losses.csv").read().splitlines()[-1])
    """)
    write(project.vault_dir / "ml" / "data" / "losses.csv", "epoch,loss\n1,9.0\n")
    write(project.vault_dir / "ml" / "Loss.md", """
        # Loss

        ![[losses.py#Losses]]

        ```python
        import os
        print(os.path.basename(os.getcwd()))
        print(open("data/losses.csv").read().splitlines()[-1])
        ```
    """)


def stdout_of(result) -> str:
    import nbformat

    nb = nbformat.read(result.notebook, as_version=4)
    return "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))


def test_working_directory_rule_under_kb_run(project, monkeypatch, capsys):
    make_losses_project(project)
    monkeypatch.chdir(project.root)
    assert kb_main(["run"]) == 0
    capsys.readouterr()
    results = run_all(project)
    assert stdout_of(results["snippets/losses.py"]) == "snippets\n2,0.25\n"
    assert stdout_of(results["ml/Loss.md:5"]) == "ml\n1,9.0\n"
    embed = render_embed(project.snippets_dir / "losses.py", "Losses", project=project)
    assert "2,0.25" in embed
    assert sorted(executions(project)) == ["ml/Loss.md:5", "snippets/losses.py"]


# kb run --------------------------------------------------------------------------------------


def test_kb_run_exit_code_and_summary(project, monkeypatch, capsys):
    write(project.snippets_dir / "fine.py", "# kb: timeout=30\n# %%\nprint('ok')\n")
    write(project.vault_dir / "Bad.md", "```python\nraise ValueError('planted')\n```\n")
    monkeypatch.chdir(project.root)
    assert kb_main(["run", "fine"]) == 0
    assert kb_main(["run", "-j", "2"]) == 1
    output = capsys.readouterr().out
    assert "line 2: ValueError: planted" in output
    assert "2 units: 1 passed, 1 failed" in output
    assert kb_main(["run", "no-such-thing"]) == 2


def test_kb_run_selects_targets(project):
    from kb.cli_run import select_units

    write(project.snippets_dir / "alpha.py", "# kb: timeout=30\n# %%\nprint(1)\n")
    write(project.vault_dir / "ml" / "Loss.md", "```python\nprint(1)\n```\n\n```python\nprint(2)\n```\n")
    project = Project.discover(start=project.root)
    cases = {
        "alpha": ["snippets/alpha.py"],
        "alpha.py": ["snippets/alpha.py"],
        str(project.snippets_dir / "alpha.py"): ["snippets/alpha.py"],
        "loss": ["ml/Loss.md:1", "ml/Loss.md:5"],
        "ml/Loss.md": ["ml/Loss.md:1", "ml/Loss.md:5"],
        "ml/Loss.md:5": ["ml/Loss.md:5"],
    }
    for target, expected in cases.items():
        units, errors = select_units(project, [target])
        assert errors == [], target
        assert [unit.name for unit in units] == expected, target
    units, errors = select_units(project, ["ml/Loss.md:3"])
    assert units == []
    assert errors == ["ml/Loss.md has no runnable fence opening at line 3"]


def test_parallel_run_executes_each_unit_once(project):
    for index in range(4):
        write(project.snippets_dir / f"s{index}.py", f"# kb: timeout=30\n# %%\nprint({index})\n")
    results = run_all(project, jobs=2)
    assert {result.status for result in results.values()} == {"passed"}
    assert sorted(executions(project)) == [f"snippets/s{i}.py" for i in range(4)]


def test_foreign_vault_needs_trust(project, tmp_path_factory, monkeypatch, capsys):
    foreign = tmp_path_factory.mktemp("foreign")
    write(foreign / "Other.md", "```python\nprint('from elsewhere')\n```\n")
    monkeypatch.chdir(project.root)
    assert kb_main(["run", "--vault", str(foreign)]) == 2
    assert "--trust" in capsys.readouterr().err
    assert kb_main(["run", "--trust", "--vault", str(foreign)]) == 0

    other = Project.discover(vault=foreign)
    with pytest.raises(UntrustedCodeError):
        make_runner(project).run(note_units(other.vault))


# Site ----------------------------------------------------------------------------------------


def test_render_embed_never_shows_stale_output(project):
    snippet = write(project.snippets_dir / "value.py", "# kb: timeout=30\n# %% Value\nprint('first')\n")
    runner = make_runner(project)
    assert "first" in render_embed(snippet, project=project, runner=runner)
    snippet.write_text("# kb: timeout=30\n# %% Value\nprint('second')\n")
    embed = render_embed(snippet, "value", project=project, runner=runner)
    assert "second" in embed
    assert "first" not in embed


def test_render_embed_failure_raises_or_warns(project):
    snippet = write(project.snippets_dir / "boom.py", "# kb: timeout=30\n# %%\nraise RuntimeError('boom')\n")
    with pytest.raises(SnippetRenderError, match="snippets/boom.py:3"):
        render_embed(snippet, project=project)
    box = render_embed(snippet, project=project, on_failure="warn")
    assert '!!! failure' in box
    assert "RuntimeError: boom" in box


# Real vault ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not ML_NOTES.is_dir(), reason="the ml-notes vault is not present")
def test_ml_notes_vault_classification(tmp_path, monkeypatch, capsys):
    vault = tmp_path / "ml-notes"
    shutil.copytree(ML_NOTES, vault)
    monkeypatch.chdir(tmp_path)
    code = kb_main(["run", "--trust", "-j", "2", "--vault", str(vault)])
    output = capsys.readouterr().out
    assert code == 1
    assert "195 units: 66 passed, 5 failed, 0 skipped, 18 missing-dependency, 106 fragment" in output

    project = Project.discover(vault=vault)
    runner = Runner(project.root, cache_dir=project.cache_dir, trust=True)
    results = [runner.result_for(unit) for unit in note_units(project.vault)]
    assert all(result is not None for result in results)
    counts = Counter(result.status for result in results)
    assert counts == {"passed": 66, "failed": 5, "missing-dependency": 18, "fragment": 106}
    missing = Counter(result.missing_package for result in results if result.missing_package)
    assert missing == {
        "tensorflow": 5, "transformers": 3, "nltk": 2, "seaborn": 2, "optuna": 1,
        "deep-translator": 1, "nlpaug": 1, "imbalanced-learn": 1, "spacy": 1, "gensim": 1,
    }
    failed = {result.unit.name: result.error for result in results if result.status == "failed"}
    network = [name for name, error in failed.items() if "network access" in error]
    assert len(network) == 3  # three notes download the Titanic CSV
    assert all(result.error for result in results if result.status != "passed")
    assert all(result.location for result in results if result.status != "passed")
    # Invalid Python, such as `!pip install`, is classified without starting a kernel.
    assert sum(result.status == "fragment" and result.key is None for result in results) == 25
