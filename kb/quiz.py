"""The recall schedule of ``kb quiz``, kept in ``.kb/quiz.json`` and never in the notes.

Only questions with an answer note take part, because the explanation is saved there. The next
question is the first of:

1. questions never explained (no explanation in the answer note and no quiz record), in note
   order;
2. questions whose review is due (due date today or earlier), least recently explained first.

The schedule doubles the wait after each explanation given in the quiz: 1, 2, 4, 8 ... days,
at most :data:`MAX_INTERVAL_DAYS`. An explanation written outside the quiz counts as the last
review on its date, with the first interval of one day.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.own_words import write_atomically
from kb.questions import Question

__all__ = ["MAX_INTERVAL_DAYS", "QuizPick", "QuizState", "pick_question"]

QUIZ_FORMAT = "kb-quiz-1"
MAX_INTERVAL_DAYS = 64


@dataclass(slots=True)
class QuizPick:
    question: Question
    reason: str
    """Reason this question comes next, e.g. ``never explained`` or ``last explained 2026-12-01``."""


class QuizState:
    """The schedule file: for each question key, the last review date, interval and due date."""

    def __init__(self, path: Path, records: dict[str, dict[str, Any]] | None = None,
                 original: bytes | None = None) -> None:
        self.path = path
        self.records = records or {}
        self._original = original

    @classmethod
    def load(cls, path: Path) -> "QuizState":
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        try:
            content = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise ValueError(
                f"{path} is not valid JSON ({error}); delete it to start the schedule afresh"
            ) from None
        if not isinstance(content, dict) or content.get("format") != QUIZ_FORMAT:
            raise ValueError(f"{path} is not a {QUIZ_FORMAT} schedule; delete it to start afresh")
        records = content.get("questions")
        return cls(path, records if isinstance(records, dict) else {}, data)

    def record_review(self, key: str, today: dt.date) -> dict[str, Any]:
        """Record an explanation given today and schedule the next review."""
        previous = self.records.get(key)
        interval = 1 if previous is None else min(2 * int(previous.get("interval_days", 1)), MAX_INTERVAL_DAYS)
        record = {
            "last": today.isoformat(),
            "interval_days": interval,
            "due": (today + dt.timedelta(days=interval)).isoformat(),
            "reviews": (previous or {}).get("reviews", 0) + 1,
        }
        self.records[key] = record
        return record

    def save(self) -> None:
        """Write the schedule atomically; fails if another process changed it since loading."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"format": QUIZ_FORMAT, "questions": self.records}, indent=1,
                          sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
        if self._original is None and not self.path.exists():
            write_atomically(self.path, None, data)
        else:
            expected = self._original if self._original is not None else self.path.read_bytes()
            write_atomically(self.path, expected, data)
        self._original = data


def _parse_date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def pick_question(questions: list[Question], state: QuizState, today: dt.date) -> tuple[QuizPick | None, dt.date | None]:
    """Return the next question to ask, or None and the date the next one falls due."""
    never: list[QuizPick] = []
    due: list[tuple[dt.date, int, QuizPick]] = []
    upcoming: list[dt.date] = []
    for order, question in enumerate(questions):
        if question.answer is None:
            continue
        record = state.records.get(question.key)
        written = question.own_words.state == "written"
        if record is None and not written:
            never.append(QuizPick(question, "never explained"))
            continue
        last = _parse_date(record.get("last")) if record else _parse_date(question.own_words.date)
        next_due = _parse_date(record.get("due")) if record else None
        if next_due is None:
            next_due = (last or today) + dt.timedelta(days=1)
        if next_due <= today:
            reason = f"last explained {last.isoformat()}" if last else "explained, date unknown"
            due.append((last or dt.date.min, order, QuizPick(question, f"{reason}, due {next_due.isoformat()}")))
        else:
            upcoming.append(next_due)
    if never:
        return never[0], None
    if due:
        due.sort(key=lambda item: (item[0], item[1]))
        return due[0][2], None
    return None, min(upcoming) if upcoming else None


def quiz_path(cache_dir: Path) -> Path:
    return Path(os.fspath(cache_dir)) / "quiz.json"
