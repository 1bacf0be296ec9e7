"""What an export produces: named file contents, plus a note for every rule or part left out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One file of an export: a safe file name (no folders) and its text."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Note:
    """A rule (or part of one) the format cannot say, or says differently, and why."""

    rule: str  # the rule's name
    message: str
    kind: str = "warning"  # "skipped": nothing written for it; "warning": written, read this


@dataclass(slots=True)
class ExportResult:
    """The files of one export, the text printed when there is no output folder, and notes."""

    files: list[ExportFile] = field(default_factory=list)
    stdout: str = ""
    notes: list[Note] = field(default_factory=list)
