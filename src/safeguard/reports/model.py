"""The words of reporting and the pure rules over them (no IO).

A report moves ``draft`` → ``approved`` → ``submitting`` → ``submitted`` (NCMEC's report id stored) →
``files_uploaded`` (every file uploaded, with its file details) → ``finished``; a person may ``retract`` it
before it is finished, and a step that cannot go on leaves it ``failed`` with the error and the step.
"""

from __future__ import annotations

from safeguard.errors import Conflict

STATES = ("draft", "approved", "submitting", "submitted", "files_uploaded", "finished", "retracted", "failed")
#: the moves allowed: state -> the states it may go to
MOVES: dict[str, frozenset[str]] = {
    "draft": frozenset({"approved", "retracted"}),
    "approved": frozenset({"submitting", "retracted", "draft"}),
    "submitting": frozenset({"submitted", "failed", "retracted"}),
    "submitted": frozenset({"files_uploaded", "failed", "retracted"}),
    "files_uploaded": frozenset({"finished", "failed", "retracted"}),
    "finished": frozenset(),
    "retracted": frozenset(),
    "failed": frozenset({"approved", "retracted"}),  # a person re-approves to retry, or retracts
}
#: states in which a submitter works the report
ACTIVE = ("approved", "submitting", "submitted", "files_uploaded")
#: the industry classification carried to NCMEC, from the case's category
INDUSTRY = ("A1", "A2", "B1", "B2")
#: cases reported without media: the conversation is the incident
CHAT_CATEGORIES = ("grooming", "sextortion")
REPORT_ROLES = frozenset({"lead", "admin"})
READER_ROLES = frozenset({"moderator", "lead", "admin", "auditor"})


def check_move(report_id: int, state: str, to: str) -> None:
    """A move the state machine does not allow is a 409 ``report_state``."""
    if to not in MOVES.get(state, frozenset()):
        raise Conflict(f"report {report_id} is {state}; it cannot become {to}", code="report_state")
