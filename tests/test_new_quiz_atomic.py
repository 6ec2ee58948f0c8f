"""kb new and kb quiz: every file they write is wholly old or wholly new, and concurrent edits
are rejected.

Each command runs in a subprocess that is killed with SIGKILL at a chosen write step or at a
random moment. Afterwards each file must hold its old bytes (or be absent, when it did not exist)
or the bytes of a complete run, and a stray ``.*.kb-tmp`` file is the only other thing allowed.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kb.cli import main

REPO = Path(__file__).resolve().parents[1]

SOURCE = """\
# Notes

Café, naïve, 日本語 — and $x^2$.

How do cold diffusion models work?

Why does a hidden state help? [[Hidden|answer]] ^q-hidden
"""

QUESTIONS = """\
How does blur replace noise? [[Cold|answer]] ^q-cold

What does a hidden state add? [[Hidden|answer]] ^q-hidden
"""

ANSWER = """\
---
answers: []
---

## In my own words

> [!prompt] Explain it.
{explanation}
## Reference explanation

Reference text, with ü and 漢字.
"""

HIDDEN_EXPLAINED = "\nCarried forward.\n<!-- kb: explained 2026-12-01 -->\n"

# A schedule in which only the question of Hidden.md has been reviewed, so kb quiz asks about
# Cold.md and then replaces this file instead of creating it.
SCHEDULE = {"format": "kb-quiz-1", "questions": {"Questions.md#^q-hidden": {
    "last": "2026-12-01", "interval_days": 64, "due": "2099-01-01", "reviews": 3}}}

# Runs a kb command with one step of kb.own_words's file writing replaced by SIGKILL: the Nth call
# of an os function ("write" kills halfway through writing the Nth temporary file).
KILL_AT = """\
import os, signal, sys
from kb import own_words
from kb.cli import main

function, number = sys.argv[1], int(sys.argv[2])
calls = 0

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

class PatchedOs:
    def __getattr__(self, name):
        return getattr(os, name)

def counted(real, on_call):
    def wrapper(*args, **kwargs):
        global calls
        calls += 1
        if calls == number:
            return on_call(real, *args, **kwargs)
        return real(*args, **kwargs)
    return wrapper

def half_written(real, *args, **kwargs):
    stream = real(*args, **kwargs)
    original_write = stream.write
    def write(data):
        original_write(data[: len(data) // 2])
        stream.flush()
        die()
    stream.write = write
    return stream

patched = PatchedOs()
if function == "write":
    patched.fdopen = counted(os.fdopen, half_written)
else:
    setattr(patched, function, counted(getattr(os, function), die))
own_words.os = patched
sys.exit(main(sys.argv[3:]))
"""


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except stray temporary files, by relative path."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.endswith(".kb-tmp")
    }


def _copy_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _run_killed(root: Path, function: str, number: int, args: list[str],
                stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    script = root.parent / f"{root.name}-kill.py"
    script.write_text(KILL_AT, encoding="utf-8")
    return subprocess.run([sys.executable, str(script), function, str(number), *args], cwd=root,
                          input=stdin, capture_output=True, timeout=60)


def _kill_at_random(root: Path, old: dict[str, bytes], command: list[str], stdin: bytes,
                    allowed: list[dict[str, bytes]], kills: int = 5) -> None:
    """Kill ``command`` at random moments of its lifetime; check the files after each kill."""
    # Standard input comes from a file, so no pipe write delays the start of the clock.
    stdin_file = root.parent / f"{root.name}-stdin.txt"
    stdin_file.write_bytes(stdin)
    _copy_files(root, old)
    began = time.monotonic()
    with stdin_file.open("rb") as stream:
        subprocess.run(command, cwd=root, stdin=stream, check=True, capture_output=True, timeout=120)
    duration = time.monotonic() - began
    assert _files(root) == allowed[-1]

    random.seed(11)
    for _ in range(kills):
        for path in list(root.rglob("*")):
            if path.is_file() and str(path.relative_to(root)) not in old:
                path.unlink()
        _copy_files(root, old)
        with stdin_file.open("rb") as stream:
            process = subprocess.Popen(command, cwd=root, stdin=stream,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.3, 1.2) * duration)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert _files(root) in allowed


# kb new ----------------------------------------------------------------------------------------

NEW_ARGS = ["new", "Cold diffusion", "--answers", "cold diffusion models"]


def _new_project(root: Path, source: str = SOURCE) -> dict[str, bytes]:
    root.mkdir(exist_ok=True)
    _copy_files(root, {"mkdocs.yml": b"site_name: t\n", "docs/Notes.md": source.encode("utf-8")})
    return _files(root)


def _new_states(tmp_path: Path, source: str = SOURCE) -> tuple[dict, dict, dict]:
    """Files before kb new, after it created the note, and after it also edited the question."""
    reference = tmp_path / "reference"
    old = _new_project(reference, source)
    subprocess.run([sys.executable, "-m", "kb.cli", *NEW_ARGS], cwd=reference, check=True,
                   capture_output=True, timeout=60)
    done = _files(reference)
    created = dict(old, **{"docs/Cold diffusion.md": done["docs/Cold diffusion.md"]})
    return old, created, done


def test_new_reference_run(tmp_path: Path) -> None:
    old, created, done = _new_states(tmp_path)
    assert set(done) == {"mkdocs.yml", "docs/Notes.md", "docs/Cold diffusion.md"}
    assert "How do cold diffusion models work? [[Cold diffusion|answer]] ^q-cold-diffusion\n" \
        in done["docs/Notes.md"].decode("utf-8")
    assert done["docs/Notes.md"].replace(b" [[Cold diffusion|answer]] ^q-cold-diffusion", b"") \
        == old["docs/Notes.md"]
    assert b'answers: ["[[Notes#^q-cold-diffusion]]"]' in done["docs/Cold diffusion.md"]


# The new note is written first (mkstemp, write, fsync, link, unlink, fsync of the folder), then
# the question's note (mkstemp, write, fsync, replace, fsync of the folder).
NEW_KILL_POINTS = [
    ("write", 1, "old"),
    ("fsync", 1, "old"),
    ("link", 1, "old"),
    ("unlink", 1, "created"),
    ("fsync", 2, "created"),
    ("write", 2, "created"),
    ("fsync", 3, "created"),
    ("replace", 1, "created"),
    ("fsync", 4, "done"),
]


@pytest.mark.parametrize(("function", "number", "expected"), NEW_KILL_POINTS)
def test_new_killed_at_write_step(tmp_path: Path, function: str, number: int, expected: str) -> None:
    old, created, done = _new_states(tmp_path)
    root = tmp_path / "project"
    _new_project(root)
    completed = _run_killed(root, function, number, NEW_ARGS)
    assert completed.returncode == -signal.SIGKILL, completed.stderr.decode()
    assert _files(root) == {"old": old, "created": created, "done": done}[expected]
    strays = [path.name for path in (root / "docs").iterdir() if path.name.endswith(".kb-tmp")]
    assert len(strays) <= 1


def test_new_killed_at_random_moments(tmp_path: Path) -> None:
    # A long source note makes the write of the question's note a large part of the run.
    source = SOURCE + "".join(f"Line {number} of a long note, ü.\n" for number in range(40_000))
    old, created, done = _new_states(tmp_path, source)
    root = tmp_path / "project"
    _new_project(root, source)
    command = [sys.executable, "-m", "kb.cli", *NEW_ARGS]
    _kill_at_random(root, old, command, b"", [old, created, done])


def _edit_during_new(monkeypatch, change) -> None:
    """Call ``change`` after kb new has read the question's note and before it writes anything."""
    import kb.cli_questions as cli_questions

    real_template = cli_questions.answer_template

    def answer_template(topic, question):
        change()
        return real_template(topic, question)

    monkeypatch.setattr(cli_questions, "answer_template", answer_template)


def test_new_rejects_concurrent_edit(tmp_path: Path, monkeypatch, capsys) -> None:
    root = tmp_path / "project"
    _new_project(root)
    source = root / "docs" / "Notes.md"
    edited = SOURCE + "\nAdded in Obsidian meanwhile.\n"
    _edit_during_new(monkeypatch, lambda: source.write_text(edited, encoding="utf-8"))
    monkeypatch.chdir(root)

    assert main(NEW_ARGS) == 1
    error = capsys.readouterr().err
    assert "Notes.md changed on disk after kb read it; nothing was saved" in error
    assert "the new note was removed again" in error
    assert source.read_text(encoding="utf-8") == edited
    assert sorted(path.name for path in (root / "docs").iterdir()) == ["Notes.md"]


def test_new_rejects_source_renamed(tmp_path: Path, monkeypatch, capsys) -> None:
    root = tmp_path / "project"
    _new_project(root)
    source = root / "docs" / "Notes.md"
    renamed = root / "docs" / "Renamed.md"
    _edit_during_new(monkeypatch, lambda: source.rename(renamed))
    monkeypatch.chdir(root)

    assert main(NEW_ARGS) == 1
    error = capsys.readouterr().err
    assert "Notes.md was removed or renamed after kb read it; nothing was saved" in error
    assert "the new note was removed again" in error
    assert renamed.read_text(encoding="utf-8") == SOURCE
    assert sorted(path.name for path in (root / "docs").iterdir()) == ["Renamed.md"]


# kb quiz ---------------------------------------------------------------------------------------

TYPED = "Blur is the corruption,\nso the model learns to undo blur.\n"
QUIZ_ARGS = ["quiz"]


def _quiz_project(root: Path, schedule: dict | None = None) -> dict[str, bytes]:
    root.mkdir(exist_ok=True)
    files = {
        "mkdocs.yml": b"site_name: t\n",
        "docs/Questions.md": QUESTIONS.encode("utf-8"),
        "docs/Cold.md": ANSWER.format(explanation="").encode("utf-8"),
        "docs/Hidden.md": ANSWER.format(explanation=HIDDEN_EXPLAINED).encode("utf-8"),
    }
    if schedule is not None:
        files[".kb/quiz.json"] = json.dumps(schedule, indent=1).encode("utf-8") + b"\n"
    _copy_files(root, files)
    return _files(root)


def _quiz_states(tmp_path: Path, schedule: dict | None, typed: str = TYPED) -> tuple[dict, dict, dict]:
    """Files before kb quiz, after it saved the explanation, and after it also saved the schedule."""
    reference = tmp_path / "reference"
    old = _quiz_project(reference, schedule)
    subprocess.run([sys.executable, "-m", "kb.cli", *QUIZ_ARGS], cwd=reference, check=True,
                   input=(typed + ".\n").encode("utf-8"), capture_output=True, timeout=60)
    done = _files(reference)
    explained = dict(old, **{"docs/Cold.md": done["docs/Cold.md"]})
    return old, explained, done


def _check_schedule(files: dict[str, bytes]) -> None:
    if ".kb/quiz.json" in files:
        content = json.loads(files[".kb/quiz.json"].decode("utf-8"))
        assert content["format"] == "kb-quiz-1"


def test_quiz_reference_run(tmp_path: Path) -> None:
    old, explained, done = _quiz_states(tmp_path, SCHEDULE)
    assert "Blur is the corruption,\nso the model learns to undo blur.\n<!-- kb: explained" \
        in done["docs/Cold.md"].decode("utf-8")
    schedule = json.loads(done[".kb/quiz.json"])
    assert set(schedule["questions"]) == {"Questions.md#^q-hidden", "Questions.md#^q-cold"}
    assert done["docs/Hidden.md"] == old["docs/Hidden.md"]


# The note is written first (mkstemp, write, fsync, replace, fsync of the folder), then the
# schedule: created with link and unlink when .kb/quiz.json is absent, else replaced.
QUIZ_KILL_POINTS = [
    (None, "write", 1, "old"),
    (None, "fsync", 1, "old"),
    (None, "replace", 1, "old"),
    (None, "fsync", 2, "explained"),
    (None, "write", 2, "explained"),
    (None, "fsync", 3, "explained"),
    (None, "link", 1, "explained"),
    (None, "unlink", 1, "done"),
    (None, "fsync", 4, "done"),
    (SCHEDULE, "write", 2, "explained"),
    (SCHEDULE, "fsync", 3, "explained"),
    (SCHEDULE, "replace", 2, "explained"),
    (SCHEDULE, "fsync", 4, "done"),
]


@pytest.mark.parametrize(("schedule", "function", "number", "expected"), QUIZ_KILL_POINTS,
                         ids=[f"{'replace' if s else 'create'}-schedule-{f}-{n}"
                              for s, f, n, _ in QUIZ_KILL_POINTS])
def test_quiz_killed_at_write_step(tmp_path: Path, schedule: dict | None, function: str,
                                   number: int, expected: str) -> None:
    old, explained, done = _quiz_states(tmp_path, schedule)
    root = tmp_path / "project"
    _quiz_project(root, schedule)
    completed = _run_killed(root, function, number, QUIZ_ARGS, (TYPED + ".\n").encode("utf-8"))
    assert completed.returncode == -signal.SIGKILL, completed.stderr.decode()
    files = _files(root)
    assert files == {"old": old, "explained": explained, "done": done}[expected]
    _check_schedule(files)


def test_quiz_killed_at_random_moments(tmp_path: Path) -> None:
    typed = "A long explanation line.\n" * 40_000
    old, explained, done = _quiz_states(tmp_path, SCHEDULE, typed)
    root = tmp_path / "project"
    _quiz_project(root, SCHEDULE)
    command = [sys.executable, "-m", "kb.cli", *QUIZ_ARGS]
    _kill_at_random(root, old, command, (typed + ".\n").encode("utf-8"), [old, explained, done])
    _check_schedule(_files(root))


def _quiz_with_change(root: Path, change) -> subprocess.CompletedProcess[str]:
    """Run kb quiz and call ``change`` once it waits for the explanation, then type ``TYPED``."""
    process = subprocess.Popen([sys.executable, "-m", "kb.cli", *QUIZ_ARGS], cwd=root,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        shown = ""
        while "or Ctrl-D." not in shown:
            line = process.stdout.readline()
            assert line, f"kb quiz ended before asking: {shown!r}"
            shown += line
        change()
        stdout, stderr = process.communicate(TYPED + ".\n", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, shown + stdout, stderr)


def _kept_and_command(root: Path, error: str) -> tuple[Path, list[str]]:
    [kept] = (root / ".kb" / "unsaved").iterdir()
    assert kept.read_text(encoding="utf-8") == TYPED
    command = error.rsplit("save it with ", 1)[1].strip()
    return kept, shlex.split(command)


def test_quiz_rejects_concurrent_edit(tmp_path: Path) -> None:
    root = tmp_path / "project"
    old = _quiz_project(root, SCHEDULE)
    note = root / "docs" / "Cold.md"
    edited = old["docs/Cold.md"] + "\nAdded in Obsidian meanwhile.\n".encode("utf-8")
    completed = _quiz_with_change(root, lambda: note.write_bytes(edited))

    assert completed.returncode == 1
    assert "Cold.md changed on disk after kb read it; nothing was saved" in completed.stderr
    assert note.read_bytes() == edited
    assert (root / ".kb" / "quiz.json").read_bytes() == old[".kb/quiz.json"]
    kept, command = _kept_and_command(root, completed.stderr)
    assert command == ["kb", "explain", "Cold", "--from", str(kept)]

    saved = subprocess.run([sys.executable, "-m", "kb.cli", *command[1:]], cwd=root,
                           capture_output=True, text=True, timeout=60)
    assert saved.returncode == 0, saved.stderr
    text = note.read_text(encoding="utf-8")
    assert f"{TYPED}<!-- kb: explained" in text
    assert text.endswith("Added in Obsidian meanwhile.\n")


def test_quiz_keeps_text_when_note_removed(tmp_path: Path) -> None:
    root = tmp_path / "project"
    old = _quiz_project(root, SCHEDULE)
    note = root / "docs" / "Cold.md"
    completed = _quiz_with_change(root, note.unlink)

    assert completed.returncode == 1
    assert "Cold.md was removed or renamed after kb read it; nothing was saved" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not note.exists()
    assert (root / ".kb" / "quiz.json").read_bytes() == old[".kb/quiz.json"]
    _kept_and_command(root, completed.stderr)


def test_quiz_rejects_concurrent_schedule_change(tmp_path: Path) -> None:
    root = tmp_path / "project"
    _quiz_project(root, SCHEDULE)
    schedule = root / ".kb" / "quiz.json"
    other = json.dumps(dict(SCHEDULE, questions={}), indent=1).encode("utf-8") + b"\n"
    completed = _quiz_with_change(root, lambda: schedule.write_bytes(other))

    assert completed.returncode == 1
    assert "the explanation was saved, but the schedule was not" in completed.stderr
    assert "quiz.json changed on disk after kb read it" in completed.stderr
    assert schedule.read_bytes() == other
    assert f"{TYPED}<!-- kb: explained" in (root / "docs" / "Cold.md").read_text(encoding="utf-8")
