"""kb quiz: question order, the spaced schedule, and the loop through stdin and a terminal."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_results import SNIPPETS, execute_snippets, install_results

from kb.cli import main
from kb.own_words import read_own_words
from kb.project import Project
from kb.questions import collect_questions
from kb.quiz import MAX_INTERVAL_DAYS, QuizState, pick_question

QUESTIONS = """\
How does blur replace noise? [[Cold|answer]] ^q-cold

What does a hidden state add? [[Hidden|answer]] ^q-hidden

Why is there no answer yet? ^q-none
"""

ANSWER = """\
---
answers: []
---

## In my own words

> [!prompt] Explain it.
{explanation}
## Reference explanation

Reference text.

## Code

![[{snippet}]]

## Results

Loss falls.
"""


def _project(tmp_path: Path, hidden_explained: str | None = "2026-12-01") -> Path:
    (tmp_path / "mkdocs.yml").write_text("site_name: t\n", encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "snippets").mkdir()
    (docs / "Questions.md").write_text(QUESTIONS, encoding="utf-8")
    (docs / "Cold.md").write_text(ANSWER.format(explanation="", snippet="cold.py"), encoding="utf-8")
    hidden = "" if hidden_explained is None else \
        f"\nCarried forward.\n<!-- kb: explained {hidden_explained} -->\n"
    (docs / "Hidden.md").write_text(ANSWER.format(explanation=hidden, snippet="hidden.py"), encoding="utf-8")
    (tmp_path / "snippets" / "cold.py").write_text(SNIPPETS["cold.py"], encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Path:
    """A scratch project whose snippets the runner has executed once."""
    return execute_snippets(tmp_path_factory.mktemp("executed"))


def _questions(root: Path):
    return collect_questions(Project.discover(root))


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# Order and schedule -----------------------------------------------------------------------------


def test_never_explained_first(tmp_path: Path) -> None:
    root = _project(tmp_path)
    state = QuizState(root / ".kb" / "quiz.json")
    pick, _ = pick_question(_questions(root), state, dt.date(2026, 12, 10))
    assert pick.question.block_id == "q-cold"
    assert pick.reason == "never explained"


def test_unanswered_questions_not_asked(tmp_path: Path) -> None:
    root = _project(tmp_path)
    questions = [q for q in _questions(root) if q.block_id == "q-none"]
    pick, next_due = pick_question(questions, QuizState(root / "quiz.json"), dt.date(2026, 12, 10))
    assert pick is None
    assert next_due is None


def test_longest_ago_next(tmp_path: Path) -> None:
    root = _project(tmp_path)
    questions = _questions(root)
    state = QuizState(root / "quiz.json")
    today = dt.date(2026, 12, 10)
    state.records["Questions.md#^q-cold"] = {"last": "2026-12-05", "interval_days": 2, "due": "2026-12-07"}
    pick, _ = pick_question(questions, state, today)
    assert pick.question.block_id == "q-hidden"  # explained 2026-12-01, due the day after
    assert pick.reason == "last explained 2026-12-01, due 2026-12-02"


def test_nothing_due_reports_next_date(tmp_path: Path) -> None:
    root = _project(tmp_path)
    state = QuizState(root / "quiz.json")
    state.records["Questions.md#^q-cold"] = {"last": "2026-12-09", "interval_days": 4, "due": "2026-12-13"}
    state.records["Questions.md#^q-hidden"] = {"last": "2026-12-09", "interval_days": 2, "due": "2026-12-11"}
    pick, next_due = pick_question(_questions(root), state, dt.date(2026, 12, 10))
    assert pick is None
    assert next_due == dt.date(2026, 12, 11)


def test_interval_doubles_up_to_cap(tmp_path: Path) -> None:
    state = QuizState(tmp_path / "quiz.json")
    day = dt.date(2026, 1, 1)
    intervals = []
    for _ in range(9):
        record = state.record_review("k", day)
        intervals.append(record["interval_days"])
        day = dt.date.fromisoformat(record["due"])
    assert intervals == [1, 2, 4, 8, 16, 32, 64, 64, 64]
    assert MAX_INTERVAL_DAYS == 64
    assert state.records["k"]["reviews"] == 9


def test_schedule_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / ".kb" / "quiz.json"
    state = QuizState.load(path)
    state.record_review("Questions.md#^q-cold", dt.date(2026, 12, 4))
    state.save()
    loaded = QuizState.load(path)
    assert loaded.records == {"Questions.md#^q-cold": {
        "last": "2026-12-04", "interval_days": 1, "due": "2026-12-05", "reviews": 1}}


def test_corrupt_schedule_reported(tmp_path: Path, monkeypatch, capsys) -> None:
    root = _project(tmp_path)
    (root / ".kb").mkdir()
    (root / ".kb" / "quiz.json").write_text("{not json", encoding="utf-8")
    monkeypatch.chdir(root)
    assert main(["quiz", "--dry-run"]) == 1
    assert "not valid JSON" in capsys.readouterr().err


# The command through stdin -----------------------------------------------------------------------


def _quiz(root: Path, stdin: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kb.cli", "quiz", *extra], cwd=root, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = _project(tmp_path)
    before = _snapshot(root)
    completed = _quiz(root, "", "--dry-run")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("Would ask (never explained): How does blur replace noise?")
    assert "the explanation would go to Cold.md" in completed.stdout
    assert "saved" not in completed.stdout
    assert _snapshot(root) == before


def test_quiz_through_stdin(tmp_path: Path, executed: Path) -> None:
    root = _project(tmp_path)
    install_results(executed, root, "cold.py")
    hidden_before = (root / "docs" / "Hidden.md").read_bytes()
    completed = _quiz(root, "Blur is the corruption,\nso undo the blur.\n.\nthis line is not read\n")
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert "Question (Questions.md:1):\n  How does blur replace noise?\n" in output
    assert "Reference text" not in output  # only the question is shown before the explanation
    assert "Saved 8 words to Cold.md:5." in output
    assert "Reference answer: Cold.md:9 (Reference explanation)" in output
    assert "Key results:      Cold.md:17 (Results)" in output
    assert "Code:             snippets/cold.py (passed)" in output
    assert "    loss 0.125" in output

    note = (root / "docs" / "Cold.md").read_text(encoding="utf-8")
    assert "Blur is the corruption,\nso undo the blur.\n<!-- kb: explained" in note
    assert "not read" not in note
    assert (root / "docs" / "Hidden.md").read_bytes() == hidden_before
    schedule = json.loads((root / ".kb" / "quiz.json").read_text(encoding="utf-8"))
    assert schedule["questions"]["Questions.md#^q-cold"]["interval_days"] == 1


@pytest.mark.parametrize(("typed", "expected"), [
    ("My text.\n## Heading two\nx\n.\n", "level-2 heading"),
    ("caf\udce9 latin\n.\n", "standard input: byte 3 is not valid UTF-8"),
])
def test_quiz_keeps_rejected_text(tmp_path: Path, typed: str, expected: str) -> None:
    root = _project(tmp_path)
    before = _snapshot(root / "docs")
    completed = subprocess.run([sys.executable, "-m", "kb.cli", "quiz"], cwd=root,
                               input=typed.encode("utf-8", "surrogateescape"),
                               capture_output=True, timeout=120)
    assert completed.returncode == 1
    error = completed.stderr.decode("utf-8")
    assert expected in error
    assert "Traceback" not in error
    [kept] = (root / ".kb" / "unsaved").iterdir()
    assert kept.read_bytes() == typed.removesuffix(".\n").encode("utf-8", "surrogateescape")
    assert _snapshot(root / "docs") == before


def test_quiz_interrupted_keeps_typed_text(tmp_path: Path) -> None:
    root = _project(tmp_path)
    before = _snapshot(root / "docs")
    controller, terminal = pty.openpty()
    # A shell that starts a job in the background makes it ignore SIGINT, and Python then
    # keeps ignoring it. The default disposition lets Python raise KeyboardInterrupt.
    process = subprocess.Popen([sys.executable, "-m", "kb.cli", "quiz"], cwd=root, stdin=terminal,
                               stdout=terminal, stderr=terminal, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(terminal)
    try:
        _read_until(controller, b"or Ctrl-D.", timeout=120)
        os.write(controller, b"Half an explanation.\r")
        time.sleep(1.0)  # let kb read the line before the interrupt arrives
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends; this pty is no controlling terminal
        rest = _read_until(controller, b"--from", timeout=120)
        assert process.wait(timeout=60) == 1
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    assert b"interrupted; nothing was saved" in rest
    assert b"Traceback" not in rest
    [kept] = (root / ".kb" / "unsaved").iterdir()
    assert kept.read_text(encoding="utf-8") == "Half an explanation.\n"
    assert _snapshot(root / "docs") == before


def test_quiz_moves_to_next_question(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert _quiz(root, "First.\n").returncode == 0
    second = _quiz(root, "", "--dry-run")
    assert "What does a hidden state add?" in second.stdout
    assert _quiz(root, "Second.\n").returncode == 0
    third = _quiz(root, "", "--dry-run")
    assert third.stdout.startswith("Nothing to review today. The next review is due")
    assert read_own_words((root / "docs" / "Hidden.md").read_text(encoding="utf-8")).earlier == 1


def test_empty_answer_saves_nothing(tmp_path: Path) -> None:
    root = _project(tmp_path)
    before = _snapshot(root)
    completed = _quiz(root, "\n\n.\n")
    assert completed.returncode == 1
    assert "nothing saved" in completed.stdout
    assert _snapshot(root) == before


def test_quiz_without_answer_notes(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "mkdocs.yml").write_text("site_name: t\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "Q.md").write_text("Why does it work?\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["quiz"]) == 0
    assert "No question has an answer note yet" in capsys.readouterr().out


# The command on a terminal -------------------------------------------------------------------------


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {marker!r}; got {data!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("ending", [b"\x04", b".\r"])
def test_quiz_on_a_terminal(tmp_path: Path, ending: bytes) -> None:
    root = _project(tmp_path)
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "kb.cli", "quiz"], cwd=root, stdin=terminal,
                               stdout=terminal, stderr=terminal, start_new_session=True)
    os.close(terminal)
    try:
        shown = _read_until(controller, b"or Ctrl-D.", timeout=120)
        assert b"How does blur replace noise?" in shown
        os.write(controller, b"Typed on a terminal.\r")
        os.write(controller, ending)
        rest = _read_until(controller, b"Next review of this question", timeout=120)
        assert b"Saved 4 words to Cold.md:5." in rest
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    note = (root / "docs" / "Cold.md").read_text(encoding="utf-8")
    assert "Typed on a terminal.\n<!-- kb: explained" in note
