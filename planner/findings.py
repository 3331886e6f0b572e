"""Findings: what the planner says about a stack, each with a stable code a script can match."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    subject: str  # the litellmModelName, pool name, flag key or config key concerned
    message: str  # what is wrong AND what to do

    @property
    def line(self) -> str:
        """The one way a finding is written on a line (Pulumi's log, the RunError, the policy pack)."""
        return f"{self.code} [{self.subject}]: {self.message}"

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "subject": self.subject, "message": self.message}


def error(code: str, subject: str, message: str) -> Finding:
    return Finding("error", code, subject, message)


def warning(code: str, subject: str, message: str) -> Finding:
    return Finding("warning", code, subject, message)


def info(code: str, subject: str, message: str) -> Finding:
    return Finding("info", code, subject, message)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.subject, f.code))


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
