"""The kb pytest plugin, driven through pytester on small projects."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]


def make_project(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", mkdocs="site_name: test\n")
    snippets = pytester.mkpydir("snippets")
    (snippets / "data").mkdir()
    (snippets / "data" / "losses.csv").write_text("epoch,loss\n1,0.5\n2,0.25\n")
    (snippets / "losses.py").write_text(textwrap.dedent("""\
        # kb: timeout=30 data=data/losses.csv
        # %% Losses
        import os
        print(os.path.basename(os.getcwd()), open("data/losses.csv").read().splitlines()[-1])
    """))
    (snippets / "broken.py").write_text(textwrap.dedent("""\
        # kb: timeout=30
        # %% Setup
        def ratio(a, b):
            return a / b

        # %% Use
        ratio(1, 0)
    """))
    ml = pytester.path / "docs" / "ml"
    (ml / "data").mkdir(parents=True)
    (ml / "data" / "losses.csv").write_text("epoch,loss\n1,9.0\n")
    (ml / "Loss.md").write_text(textwrap.dedent("""\
        # Loss

        ![[losses.py#Losses]]

        ```python
        import os
        assert os.path.basename(os.getcwd()) == "ml"
        assert open("data/losses.csv").read().splitlines()[-1] == "1,9.0"
        ```

        Prose between fences.

        ```python
        items = [3, 4]
        missing = items[5]
        ```

        ```python skip needs a GPU
        import torch
        torch.zeros(1, device="cuda")
        ```

        ```python
        import not_a_real_package_kb
        ```

        ```python
        model.fit(X)
        ```
    """))
    tests = pytester.mkpydir("tests")
    (tests / "test_plain.py").write_text("def test_plain():\n    assert True\n")


def test_collects_snippets_and_fences(pytester):
    make_project(pytester)
    result = pytester.runpytest("--collect-only", "-q", "snippets", "docs", "tests")
    result.stdout.fnmatch_lines([
        "snippets/broken.py::broken.py",
        "snippets/losses.py::losses.py",
        "docs/ml/Loss.md::line5",
        "docs/ml/Loss.md::line13",
        "docs/ml/Loss.md::line18",
        "docs/ml/Loss.md::line23",
        "docs/ml/Loss.md::line27",
        "tests/test_plain.py::test_plain",
    ])
    assert "snippets/__init__.py" not in result.stdout.str()


def test_outcomes_and_failure_locations(pytester):
    make_project(pytester)
    result = pytester.runpytest("-rs", "snippets", "docs", "tests")
    result.assert_outcomes(passed=3, failed=2, skipped=3)
    result.stdout.fnmatch_lines([
        "snippets/broken.py:4: failed: ZeroDivisionError: division by zero",
        "docs/ml/Loss.md:15: failed: IndexError: list index out of range",
        "SKIPPED [[]1[]] docs/ml/Loss.md:18: needs a GPU",
        "SKIPPED [[]1[]] docs/ml/Loss.md:23: missing-dependency: *not_a_real_package_kb*",
        "SKIPPED [[]1[]] docs/ml/Loss.md:27: fragment: NameError: name 'model' is not defined*",
    ])
    output = result.stdout.str()
    # The kernel's traceback is shown, mapped onto the snippet lines, without plugin frames.
    assert "snippets/broken.py:7" in output
    assert "pytest_plugin.py" not in output.split("short test summary")[0]


def test_strict_fails_fragments_and_missing_packages(pytester):
    make_project(pytester)
    result = pytester.runpytest("--kb-strict", "docs")
    result.assert_outcomes(passed=1, failed=3, skipped=1)


def test_second_session_reuses_cache(pytester):
    make_project(pytester)
    pytester.runpytest("snippets", "docs")
    log = pytester.path / ".kb" / "run.log"
    executed = log.read_text().splitlines()
    result = pytester.runpytest("snippets", "docs")
    result.assert_outcomes(passed=2, failed=2, skipped=3)
    assert log.read_text().splitlines() == executed
    assert len(executed) == 6  # two snippets and four fences; the skipped fence never runs


def test_kb_run_then_pytest_runs_each_unit_once(pytester, monkeypatch):
    from kb.cli import main as kb_main

    make_project(pytester)
    monkeypatch.chdir(pytester.path)
    assert kb_main(["run"]) == 1
    first = (pytester.path / ".kb" / "run.log").read_text().splitlines()
    result = pytester.runpytest("snippets", "docs")
    result.assert_outcomes(passed=2, failed=2, skipped=3)
    names = [line.split("\t")[1] for line in (pytester.path / ".kb" / "run.log").read_text().splitlines()]
    assert len(names) == len(first)
    assert len(names) == len(set(names))


def test_no_run_option_disables_collection(pytester):
    make_project(pytester)
    result = pytester.runpytest("--kb-no-run", "--collect-only", "-q", "snippets", "docs", "tests")
    result.stdout.fnmatch_lines(["tests/test_plain.py::test_plain", "1 test collected*"])


def test_plugin_is_inactive_outside_a_project(pytester):
    pytester.makepyfile(test_alone="def test_alone():\n    pass\n")
    (pytester.path / "Note.md").write_text("```python\nraise SystemExit(1)\n```\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
