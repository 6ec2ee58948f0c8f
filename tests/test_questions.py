"""Question detection, answer notes, code and own-words status, kb check, kb new and site pages."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kb.cli import main
from kb.inline_html import inline_html
from kb.model import Note
from kb.parse import parse_note
from kb.project import Project
from run_results import execute_snippets, install_results

from kb.questions import (
    asks_question,
    check_problems,
    collect_questions,
    detect_questions,
    escape_text,
    progress_markdown,
    questions_page_markdown,
)

REPO = Path(__file__).resolve().parents[1]
PERSON_NOTE = "Technical and general notes.md"


def _note(text: str, path: str = "Note.md") -> Note:
    return parse_note(text, path)


def _texts(text: str, path: str = "Note.md") -> list[str]:
    return [question.text for question in detect_questions(_note(text, path))]


# Detection rule ------------------------------------------------------------------------------

DETECTION_CASES = [
    # (note text, expected question texts)
    ("How do transformers work?\n", ["How do transformers work?"]),
    ("Is it true? Yes.\n", ["Is it true? Yes."]),
    ("Why is it now?) said nobody\n", ["Why is it now?) said nobody"]),
    ("## Why does it converge?\n", ["Why does it converge?"]),
    ("- What is a score?\n", ["What is a score?"]),
    ("1. Which noise schedule?\n", ["Which noise schedule?"]),
    ("- [ ] Read the DDPM paper\n", ["Read the DDPM paper"]),
    ("* [ ] Derive the ELBO\n", ["Derive the ELBO"]),
    ("- [x] Why was this done?\n", []),
    ("- [X] Read it\n", []),
    ("Analyze linear attention #question\n", ["Analyze linear attention"]),
    ("Study this #question/later ^q-a\n", ["Study this"]),
    ("What is [[attention]]?\n", ["What is attention?"]),
    ("Why is `x`?\n", ["Why is `x`?"]),
    ("Is $x$ positive?\n", ["Is $x$ positive?"]),
    ("**What is Backpropagation?**\n", ["**What is Backpropagation?**"]),
    ("_Why does it converge?_\n", ["_Why does it converge?_"]),
    ("📏 **How to Determine Input Size?**\n", ["📏 **How to Determine Input Size?**"]),
    ("Binary? Why use one neuron?\n", ["Binary? Why use one neuron?"]),
    ("What is [text](Note.md)?\n", ["What is text?"]),
    ("How does it work? [[Answer note|answer]] ^q-b\n", ["How does it work?"]),
    ("How does it work? #todo\n", ["How does it work?"]),
    ("Why does it work? #todo [[A|answer]] ^q-1\n", ["Why does it work?"]),
    ("Does #attention scale well?\n", ["Does #attention scale well?"]),
    ("Is [[a#b|c]] the same as [d](<My Note.md>)?\n", ["Is c the same as d?"]),
    ("What does [the paper](https://arxiv.org/abs/2006.11239) claim?\n", ["What does the paper claim?"]),
    ("Why is `[[x]]` shown raw?\n", ["Why is `[[x]]` shown raw?"]),
    ("Why is it %%[[x]]%% so?\n", ["Why is it so?"]),
    ("Why does it converge?[^1]\n\n[^1]: Ho et al.\n", ["Why does it converge?"]),
    ("> [!question] How do cold diffusion models work?\n> Some context.\n", ["How do cold diffusion models work?"]),
    ("> [!faq]- Study the [[EDM]] sampler\n", ["Study the EDM sampler"]),
    ("> [!help]\n> Why does the loss\n> plateau? ^q-loss\n", ["Why does the loss plateau?"]),
    ("> [!question]\n", []),
    # look-alikes that are not questions
    ("A plain statement.\n", []),
    ("See [[Why?]] for more.\n", []),
    ("See [why?](Why.md) here.\n", []),
    ("Go to https://example.org/search?q=1 now.\n", []),
    ("Go to https://example.org/what? now.\n", []),
    ("Use `x ? y : z` in C.\n", []),
    ("Inline code `is it?` only.\n", []),
    ("```python\nwhy = 'is this?'\n```\n", []),
    ("~~~\nHow?\n~~~\n", []),
    ("    indented code, why?\n", []),
    ("Math $p(x)?$ only.\n", []),
    ("$$\nP(A)?\n$$\n", []),
    ("> Is this a quote?\n", []),
    ("> [!note] Is this a callout?\n> Body?\n", []),
    ("> > [!question] Is this nested in a quote?\n", []),
    ("> quoted\nlazy continuation?\n", []),
    ("<!-- Is this hidden? -->\n", []),
    ("%% Is this a comment? %%\n", []),
    ("| Why? | Because |\n|---|---|\n", []),
    ("---\ntitle: Why?\n---\nBody.\n", []),
    ("A lone ? mark.\n", []),
    # a question sentence needs at least three words
    ("Why?\n", []),
    ("Really? Yes.\n", []),
    ("Binary? Use `1` output neuron.\n", []),
    ("Multi-class? Use `N` neurons for `N` classes.\n", []),
    ("- **Binary?** Use one neuron.\n", []),
    ("Note: why not?\n", []),
    ("Tag #question-mark is not the question tag.\n", []),
]


@pytest.mark.parametrize(("text", "expected"), DETECTION_CASES)
def test_detection_rule(text: str, expected: list[str]) -> None:
    assert _texts(text) == expected


def test_question_kinds_and_lines() -> None:
    note = _note("Intro.\n\nWhy is it?\n\n- [ ] Task\n\nStudy #question\n")
    found = [(q.line, q.kind) for q in detect_questions(note)]
    assert found == [(3, "question"), (5, "task"), (7, "tag")]


def test_multiline_paragraph_is_one_question() -> None:
    note = _note("First line of it\nsecond line ends here? ^q-two\n")
    [question] = detect_questions(note)
    assert question.line == 1
    assert question.last_line == 2
    assert question.block_id == "q-two"
    assert question.text == "First line of it second line ends here?"


def test_callout_question_lines_and_block() -> None:
    note = _note("Intro.\n\n> [!help]\n> Why does the loss\n> plateau? ^q-loss\n\nAfter.\n")
    [question] = detect_questions(note)
    assert (question.line, question.last_line) == (3, 5)
    assert question.kind == "callout"
    assert question.block_id == "q-loss"


def test_answer_notes_count_only_tags_and_tasks() -> None:
    text = "---\nanswers: []\n---\nWhy does it work? Because.\n\n- [ ] Check it\n\nMore #question\n\n> [!question] Why?\n"
    assert _texts(text) == ["Check it", "More"]


def test_manual_folder_is_skipped() -> None:
    assert _texts("How does kb work?\n", path="kb/Manual.md") == []


def test_crlf_note_lines() -> None:
    note = _note("Intro\r\n\r\nWhy is it?\r\n")
    assert [(q.line, q.text) for q in detect_questions(note)] == [(3, "Why is it?")]


def test_asks_question_needs_three_words() -> None:
    assert asks_question("Is it really?")
    assert asks_question("(is it really?)")
    assert not asks_question("Really?")
    assert not asks_question("Is it?")
    assert not asks_question("?")
    assert not asks_question("(?)")
    assert not asks_question("What ? no")


# The person's note ---------------------------------------------------------------------------


def _make_project(tmp_path: Path, with_person_note: bool = True) -> Path:
    (tmp_path / "mkdocs.yml").write_text("site_name: test\ndocs_dir: docs\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "snippets").mkdir()
    if with_person_note:
        shutil.copyfile(REPO / "docs" / PERSON_NOTE, tmp_path / "docs" / PERSON_NOTE)
    return tmp_path


PERSON_QUESTIONS = {
    "q-why-implement": ("tag", "Why implement it yourself.md"),
    "q-linear-attention": ("tag", "Linear attention.md"),
    "q-continuous-time": ("question", "Continuous-time diffusion.md"),
    "q-transformers": ("question", "Transformers.md"),
    "q-elucidated": ("question", "Elucidated diffusion.md"),
    "q-cross-attention": ("question", "Cross-attention.md"),
    "q-cold-diffusion": ("question", "Cold diffusion.md"),
    "q-hidden-state": ("question", "Diffusion with a hidden state.md"),
    "q-unet-attention": ("question", "Attention in the U-Net.md"),
    "q-why-dot-product": ("question", "Why dot-product attention.md"),
}


def test_person_note_has_ten_questions(tmp_path: Path) -> None:
    project = Project.discover(_make_project(tmp_path))
    questions = collect_questions(project)
    assert len(questions) == 10
    found = {q.block_id: (q.kind, q.answer_missing) for q in questions}
    assert found == PERSON_QUESTIONS
    assert all(q.path == PERSON_NOTE for q in questions)
    assert all(q.state == "open" for q in questions)


def test_person_study_tasks_found_by_tag(tmp_path: Path) -> None:
    project = Project.discover(_make_project(tmp_path))
    tagged = [q for q in collect_questions(project) if q.kind == "tag"]
    assert [q.line for q in tagged] == [3, 6]
    assert tagged[0].text.startswith("Why implement yourself, instead of writing code")


def test_person_note_advice_is_not_a_question(tmp_path: Path) -> None:
    project = Project.discover(_make_project(tmp_path))
    texts = " ".join(q.text for q in collect_questions(project))
    assert "Writing tasks down" not in texts
    assert "own words" not in texts


# Answers, code status and own words ------------------------------------------------------------

ANSWER = """---
answers: ["[[Technical and general notes#^q-cold-diffusion]]"]
---

> [!question] How do cold diffusion models work?

## In my own words

> [!prompt] Explain it.

## Reference explanation

Text.

## Code

![[cold.py]]

## Results
"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Path:
    """A scratch project whose snippets the runner has executed once."""
    return execute_snippets(tmp_path_factory.mktemp("executed"))


def _question(project: Project, block_id: str):
    return next(q for q in collect_questions(project) if q.block_id == block_id)


def test_answers_property_links_question(tmp_path: Path) -> None:
    root = _make_project(tmp_path)
    (root / "docs" / "Frost.md").write_text(ANSWER, encoding="utf-8")
    question = _question(Project.discover(root), "q-cold-diffusion")
    assert question.answer == "Frost.md"
    assert question.answer_link == "answers property"
    assert question.code == "no code"
    assert question.own_words.state == "not written"
    assert question.state == "needs code"


def test_answer_link_on_question_line(tmp_path: Path) -> None:
    root = _make_project(tmp_path)
    (root / "docs" / "Cold diffusion.md").write_text(ANSWER.replace("answers: [\"[[Technical and general notes#^q-cold-diffusion]]\"]", "answers: []"), encoding="utf-8")
    question = _question(Project.discover(root), "q-cold-diffusion")
    assert question.answer == "Cold diffusion.md"
    assert question.answer_link == "answer link"


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [("cold.py", "passed"), ("broken.py", "failed"), ("nodep.py", "failed")],
)
def test_code_status_from_runner_cache(tmp_path: Path, executed: Path, snippet: str, expected: str) -> None:
    root = _make_project(tmp_path)
    (root / "docs" / "Cold diffusion.md").write_text(ANSWER.replace("cold.py", snippet), encoding="utf-8")
    install_results(executed, root, snippet)
    question = _question(Project.discover(root), "q-cold-diffusion")
    assert question.code == expected
    assert [s.path for s in question.snippets] == [f"snippets/{snippet}"]


def test_code_status_never_run(tmp_path: Path) -> None:
    root = _make_project(tmp_path)
    (root / "docs" / "Cold diffusion.md").write_text(ANSWER, encoding="utf-8")
    (root / "snippets" / "cold.py").write_text("print('blurred')\n", encoding="utf-8")
    question = _question(Project.discover(root), "q-cold-diffusion")
    assert question.code == "not run"
    assert question.state == "needs code"


def test_code_status_stale_after_edit(tmp_path: Path, executed: Path) -> None:
    root = _make_project(tmp_path)
    (root / "docs" / "Cold diffusion.md").write_text(ANSWER, encoding="utf-8")
    install_results(executed, root, "cold.py")
    assert _question(Project.discover(root), "q-cold-diffusion").code == "passed"
    (root / "snippets" / "cold.py").write_text("print('changed')\n", encoding="utf-8")
    assert _question(Project.discover(root), "q-cold-diffusion").code == "not run"


def test_own_words_written_counts_words(tmp_path: Path) -> None:
    root = _make_project(tmp_path)
    text = ANSWER.replace("> [!prompt] Explain it.\n", "> [!prompt] Explain it.\n\nNoise is replaced by blur here.\n")
    (root / "docs" / "Cold diffusion.md").write_text(text, encoding="utf-8")
    words = _question(Project.discover(root), "q-cold-diffusion").own_words
    assert words.state == "written"
    assert words.words == 6
    assert words.date is not None


# kb check --------------------------------------------------------------------------------------


class _Args:
    def __init__(self, require_own_words: bool = False, questions: str | None = None) -> None:
        self.require_own_words = require_own_words
        self.questions = questions


def _codes(problems, severity: str) -> list[str]:
    return sorted(p.code for p in problems if p.severity == severity)


def test_check_reports_unanswered(tmp_path: Path) -> None:
    problems = check_problems(Project.discover(_make_project(tmp_path)), _Args())
    assert _codes(problems, "error") == ["question-unanswered"] * 10


def test_check_foreign_vault_unanswered_is_info(tmp_path: Path) -> None:
    vault = tmp_path / "notes"
    vault.mkdir()
    shutil.copyfile(REPO / "docs" / PERSON_NOTE, vault / PERSON_NOTE)
    project = Project.discover(tmp_path, vault=vault)
    assert project.foreign
    problems = check_problems(project, _Args())
    assert _codes(problems, "info") == ["question-unanswered"] * 10
    assert _codes(problems, "error") == []


@pytest.mark.parametrize("severity", ["error", "warning", "info"])
def test_check_questions_option_sets_severity(tmp_path: Path, severity: str) -> None:
    project = Project.discover(_make_project(tmp_path))
    problems = check_problems(project, _Args(questions=severity))
    assert _codes(problems, severity) == ["question-unanswered"] * 10
    assert len(problems) == 10


def test_check_questions_off(tmp_path: Path) -> None:
    project = Project.discover(_make_project(tmp_path))
    assert check_problems(project, _Args(questions="off")) == []


def test_check_command_questions_option(tmp_path: Path, monkeypatch, capsys) -> None:
    vault = tmp_path / "notes"
    vault.mkdir()
    (vault / "Q.md").write_text("How does this work?\n", encoding="utf-8")
    assert main(["check", "--vault", str(vault)]) == 0
    assert "Q.md:1: info: question 'How does this work?' has no answer note" in capsys.readouterr().out
    assert main(["check", "--vault", str(vault), "--questions", "error"]) == 1
    assert "Q.md:1: error: question" in capsys.readouterr().out
    assert main(["check", "--vault", str(vault), "--questions", "off"]) == 0
    assert "question" not in capsys.readouterr().out


def test_check_answer_without_code(tmp_path: Path) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    (root / "docs" / "Q.md").write_text("Why does it work? [[A|answer]]\n", encoding="utf-8")
    (root / "docs" / "A.md").write_text("## In my own words\n\nMine.\n", encoding="utf-8")
    problems = check_problems(Project.discover(root), _Args())
    assert _codes(problems, "error") == ["answer-without-code"]


def test_check_missing_snippet_reported_once(tmp_path: Path, monkeypatch, capsys) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    (root / "docs" / "Q.md").write_text("Why does it work? [[A|answer]]\n", encoding="utf-8")
    (root / "docs" / "A.md").write_text("## Code\n\n![[gone.py]]\n", encoding="utf-8")
    monkeypatch.chdir(root)
    main(["check"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("A.md:3:")]
    assert lines == ["A.md:3: error: embedded snippet 'gone.py' does not exist; add it to snippets/ or fix the embed"]


def test_check_failed_snippet(tmp_path: Path, executed: Path) -> None:
    root = _make_project(tmp_path)
    (root / "docs" / "Cold diffusion.md").write_text(ANSWER.replace("cold.py", "broken.py"), encoding="utf-8")
    install_results(executed, root, "broken.py")
    problems = [p for p in check_problems(Project.discover(root), _Args()) if p.path == "Cold diffusion.md"]
    assert _codes(problems, "error") == ["snippet-failed"]
    assert "ValueError: bad value" in next(p.message for p in problems if p.code == "snippet-failed")


def test_check_own_words_info_unless_required(tmp_path: Path, executed: Path) -> None:
    root = _make_project(tmp_path)
    (root / "docs" / "Cold diffusion.md").write_text(ANSWER, encoding="utf-8")
    install_results(executed, root, "cold.py")
    project = Project.discover(root)
    relaxed = [p for p in check_problems(project, _Args()) if p.path == "Cold diffusion.md"]
    strict = [p for p in check_problems(project, _Args(True)) if p.path == "Cold diffusion.md"]
    assert [(p.code, p.severity) for p in relaxed] == [("own-words-missing", "info")]
    assert [(p.code, p.severity) for p in strict] == [("own-words-missing", "error")]


def test_check_warns_second_own_words_section(tmp_path: Path) -> None:
    root = _make_project(tmp_path)
    text = ANSWER + "\n## In my own words\n\nWritten in the wrong place.\n"
    (root / "docs" / "Cold diffusion.md").write_text(text, encoding="utf-8")
    second = text.splitlines().index("## In my own words", ANSWER.count("\n")) + 1
    duplicates = [p for p in check_problems(Project.discover(root), _Args()) if p.code == "own-words-duplicate"]
    assert [(p.path, p.line, p.severity) for p in duplicates] == [("Cold diffusion.md", second, "warning")]


def test_check_command_has_require_own_words(tmp_path: Path, executed: Path, monkeypatch, capsys) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    (root / "docs" / "Q.md").write_text("Why does it work? [[A|answer]]\n", encoding="utf-8")
    (root / "docs" / "A.md").write_text("![[cold.py]]\n\n## In my own words\n\n> [!prompt] Go.\n", encoding="utf-8")
    install_results(executed, root, "cold.py")
    monkeypatch.chdir(root)
    assert main(["check"]) == 0
    assert main(["check", "--require-own-words"]) == 1
    assert "own words" in capsys.readouterr().out


# kb questions and kb new ------------------------------------------------------------------------


def test_questions_json_lists_ten(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(_make_project(tmp_path))
    assert main(["questions", "--open", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 10
    assert {r["state"] for r in records} == {"open"}


def test_questions_table(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(_make_project(tmp_path))
    assert main(["questions"]) == 0
    output = capsys.readouterr()
    assert "Cold diffusion.md (not created)" in output.out
    assert output.err.splitlines()[-1] == (
        "10 questions: 10 open, 0 needs code, 0 needs own words, 0 done. "
        "0 with passing code, 0 explained in own words."
    )
    rows = output.out.splitlines()[1:]
    assert len(rows) == 10
    assert all(":" in row and "  open  " in row for row in rows)


def test_questions_help_explains_states(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["questions", "--help"])
    out = capsys.readouterr().out
    for state in ("open", "needs code", "needs own words", "done"):
        assert f"  {state} " in out


def test_new_creates_template(tmp_path: Path, monkeypatch) -> None:
    root = _make_project(tmp_path)
    monkeypatch.chdir(root)
    before = (root / "docs" / PERSON_NOTE).read_bytes()
    assert main(["new", "Cold diffusion", "--answers", "^q-cold-diffusion"]) == 0
    text = (root / "docs" / "Cold diffusion.md").read_text(encoding="utf-8")
    assert text.startswith('---\nanswers: ["[[Technical and general notes#^q-cold-diffusion]]"]\n---\n')
    assert "> [!question] How do cold diffusion models work?" in text
    assert "## In my own words\n\n> [!prompt]" in text
    assert "![[cold_diffusion.py]]" in text
    # the question already had its answer link, so the person's note is unchanged
    assert (root / "docs" / PERSON_NOTE).read_bytes() == before
    question = _question(Project.discover(root), "q-cold-diffusion")
    assert question.answer == "Cold diffusion.md"
    assert question.own_words.state == "not written"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_note_mode_follows_umask(tmp_path: Path, monkeypatch, umask: int) -> None:
    root = _make_project(tmp_path)
    monkeypatch.chdir(root)
    previous = os.umask(umask)
    try:
        assert main(["new", "Cold diffusion", "--answers", "^q-cold-diffusion"]) == 0
    finally:
        os.umask(previous)
    assert (root / "docs" / "Cold diffusion.md").stat().st_mode & 0o777 == 0o666 & ~umask


# A question callout gets its answer link as its last paragraph and its block id on a line of
# its own after it: its last line may be a formula or a table row.
CALLOUT_ANSWERS = [
    # (case, callout, callout as kb new leaves it)
    ("formula", "> [!question] Why is this identity true\n> $$\n> a = b\n> $$\n",
     "> [!question] Why is this identity true\n> $$\n> a = b\n> $$\n>\n> [[Ident|answer]]\n\n^q-ident\n"),
    ("table", "> [!faq]- Which row of this table is wrong\n> | a | b |\n> | - | - |\n> | 1 | 2 |\n",
     "> [!faq]- Which row of this table is wrong\n> | a | b |\n> | - | - |\n> | 1 | 2 |\n>\n"
     "> [[Ident|answer]]\n\n^q-ident\n"),
    ("title only", "> [!question] How does the sampler pick its steps?\n",
     "> [!question] How does the sampler pick its steps?\n>\n> [[Ident|answer]]\n\n^q-ident\n"),
    ("id after it", "> [!help] Why does the id sit apart\n> body\n\n^q-apart\n",
     "> [!help] Why does the id sit apart\n> body\n>\n> [[Ident|answer]]\n\n^q-apart\n"),
]


@pytest.mark.parametrize(("case", "callout", "expected"), CALLOUT_ANSWERS, ids=[case[0] for case in CALLOUT_ANSWERS])
def test_new_answers_callout_question(tmp_path: Path, monkeypatch, case: str, callout: str, expected: str) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    note = root / "docs" / "Notes.md"
    note.write_text(f"# Notes\n\n{callout}\nText after.\n", encoding="utf-8")
    monkeypatch.chdir(root)
    assert main(["new", "Ident", "--answers", callout.split("\n")[0].split(" ", 2)[2]]) == 0
    assert note.read_text(encoding="utf-8") == f"# Notes\n\n{expected}\nText after.\n"

    [question] = collect_questions(Project.discover(root))
    assert question.kind == "callout"
    assert question.answer == "Ident.md"
    assert question.block_id == expected.rstrip("\n").rsplit("^", 1)[1]
    assert not [p for p in Project.discover(root).vault.link_problems() if p.code == "missing-block"]


def test_new_names_lines_of_note_questions(tmp_path: Path, monkeypatch, capsys) -> None:
    root = _make_project(tmp_path)
    monkeypatch.chdir(root)
    assert main(["new", "X", "--answers", f"{PERSON_NOTE}:999"]) == 1
    error = capsys.readouterr().err
    assert f"{PERSON_NOTE} has no question at line 999; its questions start at lines " in error


def test_new_refuses_to_overwrite(tmp_path: Path, monkeypatch, capsys) -> None:
    root = _make_project(tmp_path)
    monkeypatch.chdir(root)
    (root / "docs" / "Cold diffusion.md").write_text("mine\n", encoding="utf-8")
    assert main(["new", "cold diffusion"]) == 1
    assert (root / "docs" / "Cold diffusion.md").read_text(encoding="utf-8") == "mine\n"
    assert "exists already" in capsys.readouterr().err


def test_new_adds_answer_link_once(tmp_path: Path, monkeypatch) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    monkeypatch.chdir(root)
    note = root / "docs" / "Q.md"
    note.write_bytes("Intro\r\n\r\nWhy is the sky blue? ^q-sky\r\n\r\n- [ ] Read Rayleigh\r\n\r\nend".encode())
    assert main(["new", "Sky", "--answers", "sky blue"]) == 0
    assert main(["new", "Rayleigh", "--answers", "read rayleigh"]) == 0
    assert note.read_bytes() == (
        "Intro\r\n\r\nWhy is the sky blue? [[Sky|answer]] ^q-sky\r\n\r\n"
        "- [ ] Read Rayleigh [[Rayleigh|answer]] ^q-rayleigh\r\n\r\nend"
    ).encode()
    assert 'answers: ["[[Q#^q-rayleigh]]"]' in (root / "docs" / "Rayleigh.md").read_text(encoding="utf-8")
    project = Project.discover(root)
    assert [q.answer for q in collect_questions(project)] == ["Sky.md", "Rayleigh.md"]
    assert [q.answer_link for q in collect_questions(project)] == ["answers property"] * 2


def _suggested_answers(capsys, root: Path) -> list[str]:
    main(["check", "--vault", str(root / "docs"), "--questions", "error"])
    out = capsys.readouterr().out
    return [shlex.split(line.split(" --answers ", 1)[1])[0]
            for line in out.splitlines() if "--answers" in line]


def test_check_suggestion_works_with_new(tmp_path: Path, monkeypatch, capsys) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    monkeypatch.chdir(root)
    note = root / "docs" / "Q.md"
    note.write_text(
        "**Which explorer found the *northwest passage* first?**\n\n"
        "Which explorer found the *northwest passage* later?\n\n"
        "How does it work? ^q-work\n",
        encoding="utf-8",
    )
    suggested = _suggested_answers(capsys, root)
    assert suggested == [
        "Which explorer found the northwest passage first?",
        "Which explorer found the northwest passage later?",
        "q-work",
    ]
    assert main(["new", "Explorer", "--answers", suggested[0]]) == 0
    text = note.read_text(encoding="utf-8")
    assert text.startswith(
        "**Which explorer found the *northwest passage* first?** [[Explorer|answer]] ^q-explorer\n"
    )
    project = Project.discover(root)
    [answered] = [q for q in collect_questions(project) if q.answer == "Explorer.md"]
    assert answered.answer_link == "answers property"
    assert answered.line == 1


def test_check_suggests_place_for_duplicates(tmp_path: Path, monkeypatch, capsys) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    monkeypatch.chdir(root)
    note = root / "docs" / "Q.md"
    note.write_text("Why does it work?\n\nWhy does it work?\n", encoding="utf-8")
    assert _suggested_answers(capsys, root) == ["Q.md:1", "Q.md:3"]
    assert main(["new", "Second", "--answers", "Q.md:3"]) == 0
    assert note.read_text(encoding="utf-8") == (
        "Why does it work?\n\nWhy does it work? [[Second|answer]] ^q-second\n"
    )


def test_new_block_id_is_unique(tmp_path: Path, monkeypatch) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    monkeypatch.chdir(root)
    note = root / "docs" / "Q.md"
    note.write_text("Old one here. ^q-sky\n\nWhy is the sky blue?\n", encoding="utf-8")
    assert main(["new", "Sky", "--answers", "sky blue"]) == 0
    assert note.read_text(encoding="utf-8").endswith("Why is the sky blue? [[Sky|answer]] ^q-sky-2\n")


def test_new_rejects_concurrent_change(tmp_path: Path, monkeypatch, capsys) -> None:
    import kb.cli_questions

    root = _make_project(tmp_path, with_person_note=False)
    monkeypatch.chdir(root)
    note = root / "docs" / "Q.md"
    note.write_text("Why is the sky blue?\n", encoding="utf-8")
    real_write = kb.cli_questions.write_atomically

    def edit_first(path, expected, data):
        if path == note:
            note.write_text("Why is the sky blue? Edited elsewhere.\n", encoding="utf-8")
        real_write(path, expected, data)

    monkeypatch.setattr(kb.cli_questions, "write_atomically", edit_first)
    assert main(["new", "Sky", "--answers", "sky blue"]) == 1
    assert "changed on disk" in capsys.readouterr().err
    assert note.read_text(encoding="utf-8") == "Why is the sky blue? Edited elsewhere.\n"
    assert not (root / "docs" / "Sky.md").exists()


def test_new_rejects_unknown_question(tmp_path: Path, monkeypatch, capsys) -> None:
    root = _make_project(tmp_path)
    monkeypatch.chdir(root)
    assert main(["new", "X", "--answers", "no such question"]) == 1
    assert not (root / "docs" / "X.md").exists()
    assert "no question" in capsys.readouterr().err


def test_new_rejects_bad_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(_make_project(tmp_path))
    assert main(["new", "a|b"]) == 1
    assert main(["new", "../outside"]) == 1


# Site pages -------------------------------------------------------------------------------------


def test_questions_page_groups_and_links(tmp_path: Path) -> None:
    root = _make_project(tmp_path)
    (root / "docs" / "Cold diffusion.md").write_text(ANSWER, encoding="utf-8")
    page = questions_page_markdown(Project.discover(root))
    assert "## Technical and general notes\n\nFrom [[Technical and general notes]]\n" in page
    assert "[[Cold diffusion#In my own words|own words]]" in page
    assert "[[Cold diffusion#Code|code]]" in page
    assert page.count("kb-badge-answer kb-badge-open") == 9


def test_questions_page_escapes_html(tmp_path: Path) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    (root / "docs" / "Q.md").write_text("Is <script>alert(1)</script> *safe*?\n", encoding="utf-8")
    page = questions_page_markdown(Project.discover(root))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <em>safe</em>?" in page


@pytest.mark.parametrize("text, expected", [
    ("Why *this* and **that**?", "Why <em>this</em> and <strong>that</strong>?"),
    ("Is ==this== or ~~that~~ it?", "Is <mark>this</mark> or <del>that</del> it?"),
    ("What does `x[[y]]` do?", "What does <code>x&#91;&#91;y&#93;&#93;</code> do?"),
    ("Why is $\\sigma^2$ used?", 'Why is <span class="arithmatex">&#92;(&#92;sigma&#94;2&#92;)</span> used?'),
    ("Is #tag or 100% or a_b_c a word?", "Is &#35;tag or 100&#37; or a_b_c a word?"),
    ("Is <b>x</b> & y?", "Is &lt;b&gt;x&lt;/b&gt; &amp; y?"),
    ("Why 2 * 3 * 4?", "Why 2 * 3 * 4?"),
])
def test_question_html(text: str, expected: str) -> None:
    assert inline_html(text) == expected


def test_escape_text() -> None:
    assert escape_text("a|b [c] <d> & `e` #t") == "a\\|b \\[c\\] &lt;d&gt; &amp; `e` \\#t"


def test_progress_line(tmp_path: Path, executed: Path) -> None:
    root = _make_project(tmp_path)
    text = ANSWER.replace("> [!prompt] Explain it.\n", "> [!prompt] Explain it.\n\nMine.\n")
    (root / "docs" / "Cold diffusion.md").write_text(text, encoding="utf-8")
    install_results(executed, root, "cold.py")
    assert progress_markdown(Project.discover(root)) == (
        "Answered with passing code 1 of 10, explained in own words 1 of 10."
    )


def test_cli_entry_point_runs(tmp_path: Path) -> None:
    root = _make_project(tmp_path)
    completed = subprocess.run([sys.executable, "-m", "kb.cli", "questions", "--open"], cwd=root,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count(PERSON_NOTE) == 10


def test_questions_page_links_each_line(tmp_path: Path) -> None:
    root = _make_project(tmp_path, with_person_note=False)
    (root / "docs" / "Q.md").write_text(
        "Why is the sky blue at noon?\n\n# Optics\n\nWhat bends the light here?\n\n"
        "## Odd # heading\n\nHow does this one link?\n", encoding="utf-8",
    )
    page = questions_page_markdown(Project.discover(root))
    assert "([[Q|line 1]])" in page
    assert "([[Q#Optics|line 5]])" in page
    assert "([[Q#Optics|line 9]])" in page  # a heading with "#" cannot be linked to
