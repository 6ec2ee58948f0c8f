"""kb explain: own-words section edits that are atomic, byte-preserving and change-aware."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kb.cli import main
from kb.own_words import (
    ConcurrentChangeError,
    ExplanationError,
    NoteSnapshot,
    read_own_words,
    replace_explanation,
    save_explanation,
)

REPO = Path(__file__).resolve().parents[1]

NOTE = """---
answers: ["[[Notes#^q-cold]]"]
---

> [!question] How do cold diffusion models work?

## In my own words

> [!prompt] Explain it without looking.

## Reference explanation

Café, naïve, 日本語 — and $x^2$.

## Code

![[cold.py]]
"""


def _project(tmp_path: Path, text: str = NOTE, name: str = "Cold diffusion.md", newline: str = "\n",
             final_newline: bool = True) -> Path:
    (tmp_path / "mkdocs.yml").write_text("site_name: t\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    body = text.replace("\n", newline)
    if not final_newline:
        body = body[: -len(newline)]
    (tmp_path / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "docs" / name).write_bytes(body.encode("utf-8"))
    return tmp_path / "docs" / name


def _split_around_section(data: bytes) -> tuple[bytes, bytes]:
    start = data.index(b"> [!prompt]")
    end = data.index(b"## Reference explanation")
    return data[:start], data[end:]


# Reading ----------------------------------------------------------------------------------------


def test_prompt_only_is_not_written() -> None:
    state = read_own_words(NOTE)
    assert state.state == "not written"
    assert state.line == 7


def test_missing_section() -> None:
    assert read_own_words("# Title\n\nText.\n").state == "missing"


def test_earlier_callouts_do_not_count() -> None:
    text = NOTE.replace(
        "> [!prompt] Explain it without looking.\n",
        "> [!prompt] Explain it without looking.\n\n> [!quote]- Earlier explanation (2026-01-02)\n> Old words here.\n",
    )
    state = read_own_words(text)
    assert state.state == "not written"
    assert state.earlier == 1


def test_section_inside_code_is_ignored() -> None:
    text = "```\n## In my own words\n\nNot real.\n```\n"
    assert read_own_words(text).state == "missing"


# Editing ----------------------------------------------------------------------------------------


def test_first_explanation_inserted_after_prompt() -> None:
    new = replace_explanation(NOTE, "Blur instead of noise.\n", "2026-12-04", "2026-01-01")
    assert "> [!prompt] Explain it without looking.\n\nBlur instead of noise.\n" \
           "<!-- kb: explained 2026-12-04 -->\n\n## Reference explanation" in new
    state = read_own_words(new)
    assert (state.state, state.words, state.date) == ("written", 4, "2026-12-04")


def test_second_explanation_keeps_first_folded() -> None:
    first = replace_explanation(NOTE, "First take.", "2026-12-04", "2026-01-01")
    second = replace_explanation(first, "Second take, better.", "2026-12-09", "2026-01-01")
    assert "Second take, better.\n<!-- kb: explained 2026-12-09 -->\n\n" \
           "> [!quote]- Earlier explanation (2026-12-04)\n> First take.\n\n## Reference" in second
    third = replace_explanation(second, "Third.", "2026-12-20", "2026-01-01")
    assert third.index("Earlier explanation (2026-12-09)") < third.index("Earlier explanation (2026-12-04)")
    assert read_own_words(third).earlier == 2


def test_hand_written_explanation_dated_by_file() -> None:
    text = NOTE.replace("> [!prompt] Explain it without looking.\n",
                        "> [!prompt] Explain it without looking.\n\nWritten in Obsidian.\n")
    new = replace_explanation(text, "Now with kb.", "2026-12-04", "2026-11-30")
    assert "> [!quote]- Earlier explanation (2026-11-30)\n> Written in Obsidian.\n" in new


def test_multi_paragraph_explanation_quoted_whole() -> None:
    first = replace_explanation(NOTE, "One.\n\nTwo.\n\n- three", "2026-12-04", "x")
    second = replace_explanation(first, "New.", "2026-12-05", "x")
    assert "> [!quote]- Earlier explanation (2026-12-04)\n> One.\n>\n> Two.\n>\n> - three\n" in second
    assert second.count("One.") == 1


def test_section_added_when_missing() -> None:
    text = "# Topic\n\n## Reference explanation\n\nRef.\n"
    new = replace_explanation(text, "Mine.", "2026-12-04", "x")
    assert new == ("# Topic\n\n## In my own words\n\nMine.\n<!-- kb: explained 2026-12-04 -->\n\n"
                   "## Reference explanation\n\nRef.\n")


def test_section_appended_at_end() -> None:
    new = replace_explanation("# Topic\n\nText.", "Mine.", "2026-12-04", "x")
    assert new == "# Topic\n\nText.\n\n## In my own words\n\nMine.\n<!-- kb: explained 2026-12-04 -->"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_other_bytes_preserved(tmp_path: Path, newline: str, final_newline: bool) -> None:
    path = _project(tmp_path, newline=newline, final_newline=final_newline)
    before = path.read_bytes()
    for explanation, day in (("Première idée 🙂", "2026-12-04"), ("Zweite Idee", "2026-12-05")):
        save_explanation(NoteSnapshot.read(path), explanation, day)
    after = path.read_bytes()
    assert _split_around_section(after) == _split_around_section(before)
    assert after.endswith(newline.encode()) == final_newline
    middle = after[len(_split_around_section(after)[0]):-len(_split_around_section(after)[1])]
    lines = middle.split(b"\n")[:-1]
    assert all(line.endswith(b"\r") for line in lines) == (newline == "\r\n")
    assert "Zweite Idee".encode() in middle
    assert "> Première idée 🙂".encode() in middle


def test_last_section_without_final_newline(tmp_path: Path) -> None:
    text = "# T\n\n## In my own words\n\n> [!prompt] Go.\n\nOld words"
    path = tmp_path / "n.md"
    path.write_bytes(text.encode())
    save_explanation(NoteSnapshot.read(path), "New words", "2026-12-04")
    assert path.read_bytes().decode() == (
        "# T\n\n## In my own words\n\n> [!prompt] Go.\n\nNew words\n"
        "<!-- kb: explained 2026-12-04 -->\n\n> [!quote]- Earlier explanation ("
        + NoteSnapshot.read(path).modified + ")\n> Old words"
    )


def test_byte_order_mark_kept(tmp_path: Path) -> None:
    path = tmp_path / "n.md"
    path.write_bytes(b"\xef\xbb\xbf## In my own words\n\n> [!prompt] Go.\n")
    save_explanation(NoteSnapshot.read(path), "Mine", "2026-12-04")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf## In my own words\n")
    assert read_own_words(path.read_text(encoding="utf-8-sig")).state == "written"


def test_rejects_heading_that_ends_section() -> None:
    with pytest.raises(ExplanationError, match="level-2 heading"):
        replace_explanation(NOTE, "Intro\n\n## Not allowed\n", "2026-12-04", "x")
    allowed = replace_explanation(NOTE, "Intro\n\n### Details\n\nMore.", "2026-12-04", "x")
    assert read_own_words(allowed).words == 3


def test_rejects_empty_explanation() -> None:
    with pytest.raises(ExplanationError, match="empty"):
        replace_explanation(NOTE, "  \n\n", "2026-12-04", "x")


def test_rejects_concurrent_change(tmp_path: Path) -> None:
    path = _project(tmp_path)
    snapshot = NoteSnapshot.read(path)
    changed = path.read_text(encoding="utf-8") + "\nEdited in Obsidian meanwhile.\n"
    path.write_text(changed, encoding="utf-8")
    with pytest.raises(ConcurrentChangeError, match="changed on disk"):
        save_explanation(snapshot, "Mine.", "2026-12-04")
    assert path.read_text(encoding="utf-8") == changed
    assert sorted(p.name for p in path.parent.iterdir()) == ["Cold diffusion.md"]


def test_rejects_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "n.md"
    path.write_bytes(b"## In my own words\n\n\xff\n")
    with pytest.raises(ExplanationError, match="not valid UTF-8"):
        NoteSnapshot.read(path)


def test_file_mode_kept(tmp_path: Path) -> None:
    path = _project(tmp_path)
    os.chmod(path, 0o640)
    save_explanation(NoteSnapshot.read(path), "Mine.", "2026-12-04")
    assert path.stat().st_mode & 0o777 == 0o640


# The command ----------------------------------------------------------------------------------


def test_explain_from_file(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _project(tmp_path)
    source = tmp_path / "mine.md"
    source.write_text("Blur is the corruption.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "cold diffusion", "--from", str(source)]) == 0
    assert "Saved 4 words to Cold diffusion.md:7" in capsys.readouterr().out
    assert "Blur is the corruption.\n<!-- kb: explained" in path.read_text(encoding="utf-8")


def test_explain_refuses_plain_note(tmp_path: Path, monkeypatch, capsys) -> None:
    text = "# Technical and general notes\n\nHow do cold diffusion models work?\n"
    path = _project(tmp_path, text=text, name="Technical and general notes.md")
    source = tmp_path / "mine.md"
    source.write_text("Blur is the corruption.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Technical and general notes", "--from", str(source)]) == 1
    err = capsys.readouterr().err
    assert "Technical and general notes.md is not an answer note" in err
    assert 'kb new "TOPIC" --answers QUESTION' in err
    assert "--force" in err
    assert path.read_text(encoding="utf-8") == text


def test_explain_force_adds_section(tmp_path: Path, monkeypatch) -> None:
    path = _project(tmp_path, text="# Plain\n\nSome text.\n", name="Plain.md")
    source = tmp_path / "mine.md"
    source.write_text("Mine.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Plain", "--from", str(source), "--force"]) == 0
    assert "## In my own words\n\nMine.\n" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("text", [
    "---\nanswers: []\n---\nBody.\n",
    "Body.\n\n## In my own words\n\n> [!prompt] Go.\n",
])
def test_explain_accepts_answer_notes(tmp_path: Path, monkeypatch, text: str) -> None:
    _project(tmp_path, text=text, name="Answer.md")
    source = tmp_path / "mine.md"
    source.write_text("Mine.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Answer", "--from", str(source)]) == 0


def test_explain_accepts_answer_link_target(tmp_path: Path, monkeypatch) -> None:
    path = _project(tmp_path, text="Body only.\n", name="Answer.md")
    (path.parent / "Q.md").write_text("Why does it work? [[Answer|answer]]\n", encoding="utf-8")
    source = tmp_path / "mine.md"
    source.write_text("Mine.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Answer", "--from", str(source)]) == 0


def test_explain_from_stdin(tmp_path: Path, monkeypatch) -> None:
    path = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("From standard input.\n"))
    assert main(["explain", "Cold diffusion", "--from", "-"]) == 0
    assert read_own_words(path.read_text(encoding="utf-8")).words == 3


def test_explain_with_editor(tmp_path: Path, monkeypatch) -> None:
    path = _project(tmp_path)
    editor = tmp_path / "editor.py"
    editor.write_text(textwrap.dedent(f"""\
        import sys
        path = sys.argv[1]
        template = open(path, encoding="utf-8").read()
        assert "<!-- kb: write your explanation above this line" in template
        open(path, "w", encoding="utf-8").write("Typed in the editor." + template)
        """), encoding="utf-8")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Cold diffusion"]) == 0
    text = path.read_text(encoding="utf-8")
    assert "Typed in the editor.\n<!-- kb: explained" in text
    assert "write your explanation above" not in text


def test_explain_editor_left_empty(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _project(tmp_path)
    before = path.read_bytes()
    monkeypatch.setenv("EDITOR", "true")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Cold diffusion"]) == 1
    assert "empty" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_explain_keeps_text_on_concurrent_change(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _project(tmp_path)
    editor = tmp_path / "editor.py"
    # The "editor" changes the note itself, as Obsidian saving it meanwhile would.
    editor.write_text(textwrap.dedent(f"""\
        import sys
        note = {str(path)!r}
        open(note, "a", encoding="utf-8").write("Edited meanwhile.\\n")
        template = open(sys.argv[1], encoding="utf-8").read()
        open(sys.argv[1], "w", encoding="utf-8").write("Typed text." + template)
        """), encoding="utf-8")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Cold diffusion"]) == 1
    error = capsys.readouterr().err
    assert "changed on disk" in error
    assert path.read_text(encoding="utf-8").endswith("Edited meanwhile.\n")
    [kept] = (tmp_path / ".kb" / "unsaved").iterdir()
    assert kept.read_text(encoding="utf-8").startswith("Typed text.")
    assert f'--from "{kept}"' in error


# Each editor types text and then fails in its own way; the text must survive in .kb/unsaved/.
FAILING_EDITORS = [
    # (case, editor script after the text is typed, expected error, kept text)
    ("level-2 heading", "", "level-2 heading", "Typed text.\n\n## Summary\nMore."),
    ("non-zero exit", "sys.exit(3)", "exited with code 3", "Typed text.\n\n## Summary\nMore."),
]


@pytest.mark.parametrize(("case", "exit_line", "expected", "kept_text"), FAILING_EDITORS,
                         ids=[case[0] for case in FAILING_EDITORS])
def test_explain_keeps_text_editor_fails(tmp_path: Path, monkeypatch, capsys, case: str,
                                         exit_line: str, expected: str, kept_text: str) -> None:
    path = _project(tmp_path)
    before = path.read_bytes()
    editor = tmp_path / "editor.py"
    editor.write_text(textwrap.dedent(f"""\
        import sys
        template = open(sys.argv[1], encoding="utf-8").read()
        open(sys.argv[1], "w", encoding="utf-8").write({kept_text!r} + template)
        {exit_line}
        """), encoding="utf-8")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.chdir(tmp_path)

    assert main(["explain", "Cold diffusion"]) == 1
    error = capsys.readouterr().err
    assert expected in error
    assert path.read_bytes() == before
    [kept] = (tmp_path / ".kb" / "unsaved").iterdir()
    assert kept.read_text(encoding="utf-8").rstrip("\n") == kept_text
    assert f'--from "{kept}"' in error


def test_kept_texts_never_overwrite(tmp_path: Path, monkeypatch, capsys) -> None:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    for text in ("First.\n## Oops\n", "Second.\n## Oops again\n", "Third.\n## Again\n"):
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))
        assert main(["explain", "Cold diffusion", "--from", "-"]) == 1
    kept = sorted(path.read_text(encoding="utf-8") for path in (tmp_path / ".kb" / "unsaved").iterdir())
    assert kept == ["First.\n## Oops\n", "Second.\n## Oops again\n", "Third.\n## Again\n"]


def test_explain_missing_editor_message(tmp_path: Path, monkeypatch, capsys) -> None:
    _project(tmp_path)
    monkeypatch.setenv("EDITOR", str(tmp_path / "no-such-editor"))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Cold diffusion"]) == 1
    error = capsys.readouterr().err
    assert "cannot start the editor" in error
    assert "set $EDITOR" in error
    assert "Traceback" not in error


def test_explain_stdin_not_utf8_kept(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _project(tmp_path)
    before = path.read_bytes()
    stdin = io.TextIOWrapper(io.BytesIO(b"caf\xe9 latin\n"), encoding="utf-8", errors="surrogateescape")
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Cold diffusion", "--from", "-"]) == 1
    error = capsys.readouterr().err
    assert "standard input: byte 3 is not valid UTF-8" in error
    assert path.read_bytes() == before
    [kept] = (tmp_path / ".kb" / "unsaved").iterdir()
    assert kept.read_bytes() == b"caf\xe9 latin\n"


def test_explain_binary_file_rejected(tmp_path: Path, monkeypatch, capsys) -> None:
    _project(tmp_path)
    source = tmp_path / "binary"
    source.write_bytes(b"\x00\xf0\x9f\x00\xff")
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Cold diffusion", "--from", str(source)]) == 1
    assert "is not valid UTF-8" in capsys.readouterr().err


def test_explain_rejects_read_only_note(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _project(tmp_path)
    before = path.read_bytes()
    path.chmod(0o444)
    monkeypatch.setattr(sys, "stdin", io.StringIO("Typed.\n"))
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Cold diffusion", "--from", "-"]) == 1
    assert "is read-only; make it writable" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_explain_rejects_two_sections(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _project(tmp_path, NOTE + "\n## In my own words\n\nSecond.\n")
    before = path.read_bytes()
    monkeypatch.setattr(sys, "stdin", io.StringIO("Typed.\n"))
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Cold diffusion", "--from", "-"]) == 1
    assert "2 '## In my own words' sections (lines 7, 19)" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_explain_rejects_ambiguous_name(tmp_path: Path, monkeypatch, capsys) -> None:
    first = _project(tmp_path, name="w1/Summary.md")
    second = tmp_path / "docs" / "w2" / "Summary.md"
    second.parent.mkdir()
    second.write_text(NOTE, encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.StringIO("Typed.\n"))
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Summary", "--from", "-"]) == 1
    assert "matches 2 notes (w1/Summary.md, w2/Summary.md)" in capsys.readouterr().err
    assert first.read_text(encoding="utf-8") == NOTE
    assert second.read_text(encoding="utf-8") == NOTE


def test_explain_unknown_note(tmp_path: Path, monkeypatch, capsys) -> None:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "Cold difusion", "--from", "-"]) == 1
    assert "did you mean: Cold diffusion" in capsys.readouterr().err


# Atomicity under SIGKILL --------------------------------------------------------------------------

KILL_AT = """\
import os, signal, sys
from pathlib import Path
from kb import own_words

stage = sys.argv[2]
real_fsync = os.fsync
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if stage == "write":
    # die after half of the temporary file is written
    real_fdopen = os.fdopen
    def fdopen(fd, *args, **kwargs):
        stream = real_fdopen(fd, *args, **kwargs)
        original_write = stream.write
        def write(data):
            original_write(data[: len(data) // 2])
            stream.flush()
            die()
        stream.write = write
        return stream
    own_words.os.fdopen = fdopen
elif stage == "fsync":
    own_words.os.fsync = die
elif stage == "replace":
    own_words.os.replace = die
snapshot = own_words.NoteSnapshot.read(Path(sys.argv[1]))
own_words.save_explanation(snapshot, "New explanation. " * 1000, "2026-12-04")
"""


@pytest.mark.parametrize("stage", ["write", "fsync", "replace"])
def test_killed_mid_write_leaves_old_note(tmp_path: Path, stage: str) -> None:
    path = _project(tmp_path)
    before = path.read_bytes()
    script = tmp_path / "kill.py"
    script.write_text(KILL_AT, encoding="utf-8")
    completed = subprocess.run([sys.executable, str(script), str(path), stage], cwd=REPO,
                               capture_output=True, timeout=60)
    assert completed.returncode == -signal.SIGKILL
    assert path.read_bytes() == before


def test_killed_at_random_moments(tmp_path: Path) -> None:
    path = _project(tmp_path)
    old = path.read_bytes()
    lines = 50_000
    explanation = tmp_path / "long.md"
    explanation.write_text("A long explanation line.\n" * lines, encoding="utf-8")
    command = [sys.executable, "-m", "kb.cli", "explain", "Cold diffusion", "--from", str(explanation)]

    # One full run measures how long the command takes, so the kills spread over its lifetime.
    began = time.monotonic()
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    duration = time.monotonic() - began
    new = path.read_bytes()
    assert read_own_words(new.decode("utf-8")).words == 4 * lines

    random.seed(7)
    for _ in range(6):
        path.write_bytes(old)
        process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.3, 1.2) * duration)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert path.read_bytes() in (old, new)
