"""Fault-injection bookkeeping shared by the fault tests: a tally of faults tried and survived, duplicate models,
and leaked secrets, written to .cache/fault-figures/<module>.json at the end of each module (the figures the
issue asks for), and a leak scanner that does NOT reuse the redaction code it checks.

A fault is "survived" when its scenario ends as the test asserts: the outcome is right, no model was registered
twice, and no secret appears in any text the scenario collected (exception messages, outputs that are not marked
secret, the serialized provider, the double's records), in any encoding the scanner knows.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR = ROOT / ".cache" / "fault-figures"
FRAGMENT = 10  # a run of this many characters of a secret counts as a leak
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


@dataclass
class FaultRecord:
    name: str
    service: str
    survived: bool = False
    duplicates: int = 0
    leaks: list[str] = field(default_factory=list)


@dataclass
class Tally:
    module: str
    records: list[FaultRecord] = field(default_factory=list)

    def start(self, name: str, service: str) -> FaultRecord:
        record = FaultRecord(name, service)
        self.records.append(record)
        return record

    def figures(self) -> dict[str, Any]:
        return {"faults_tried": len(self.records), "survived": sum(r.survived for r in self.records),
                "duplicate_models": sum(r.duplicates for r in self.records),
                "leaked_secrets": sum(len(r.leaks) for r in self.records),
                "faults": [asdict(r) for r in self.records]}

    def write(self) -> Path:
        FIGURES_DIR.mkdir(parents=True, exist_ok=True)
        path = FIGURES_DIR / f"{self.module}.json"
        path.write_text(json.dumps(self.figures(), indent=2) + "\n")
        return path


def _encodings(secret: str) -> set[str]:
    return {secret, secret.replace("/", "\\/"), quote(secret, safe=""), json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=True)[1:-1], "".join(f"\\u{ord(c):04x}" for c in secret)}


def _fragments(secret: str) -> set[str]:
    size = min(FRAGMENT, len(secret))
    return {secret[i:i + size] for i in range(len(secret) - size + 1)}


def _decoded_base64(text: str) -> list[str]:
    """Every base64-looking run in `text`, decoded at each alignment, standard and URL-safe."""
    found = []
    for run in _BASE64_RUN.findall(text):
        core = run.rstrip("=").replace("-", "+").replace("_", "/")
        for skip in range(4):
            chunk = core[skip:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            try:
                found.append(base64.b64decode(chunk).decode("utf-8", errors="ignore"))
            except (binascii.Error, ValueError):
                continue
    return found


def leaks(texts: Iterable[Any], secrets: Iterable[str]) -> list[str]:
    """'secret #i in text #j' for every secret (or a run of FRAGMENT of its characters) found in any text."""
    found = []
    texts = [t if isinstance(t, str) else json.dumps(t, default=str) for t in texts]
    for i, secret in enumerate(s for s in secrets if s):
        needles = {f for form in _encodings(secret) for f in _fragments(form)}
        for j, text in enumerate(texts):
            candidates = [text, *_decoded_base64(text)]
            if any(needle in candidate for needle in needles for candidate in candidates):
                found.append(f"secret #{i} in text #{j}")
    return found
