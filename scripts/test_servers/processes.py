"""What the test-server scripts (unleash.py, vllm_cpu.py) share: their state files, their lock, their logs and the
processes they track. Standard library only: vllm_cpu.py also runs as a file inside the vLLM venv."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Iterator

LOG_TAIL_LINES = 40
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def default_home() -> Path:
    """Where the servers are installed and keep their state: $KINDO_TEST_SERVERS_HOME, else <repo>/.cache/test-servers."""
    env = os.environ.get("KINDO_TEST_SERVERS_HOME")
    return Path(env).resolve() if env else REPO_ROOT / ".cache" / "test-servers"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log (of its last 128 KiB), colour codes removed, framed with its path."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 128 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(no log at {path}: {e.strerror})"
    body = "\n".join(_ANSI.sub("", line) for line in data.splitlines()[-lines:])
    return f"--- last {lines} lines of {path} ---\n{body}\n--- end of {path} ---"


def proc_starttime(pid: int) -> int | None:
    """Start time of a live, non-zombie process (clock ticks since boot); None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # zombie/dead: gone for our purposes
        return None
    return int(fields[19])


def alive(proc: dict[str, Any] | None) -> bool:
    """Whether the process recorded as {pid, starttime} still runs (the start time guards against a reused pid)."""
    if not proc or not proc.get("pid"):
        return False
    started = proc_starttime(int(proc["pid"]))
    return started is not None and (proc.get("starttime") is None or started == proc["starttime"])


def ident(pid: int) -> dict[str, Any]:
    return {"pid": pid, "starttime": proc_starttime(pid)}


def free_port(preferred: int | None = None) -> int:
    """`preferred` when it is free, else a port the kernel picks on 127.0.0.1."""
    if preferred:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as node and postgres do
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_text(path: Path, text: str, private: bool = False) -> None:
    """Write a file atomically; `private`: readable by its owner only (0600)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    mode = 0o600 if private else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)  # the umask may have narrowed or an older file widened it
    os.replace(tmp, path)


def write_json(path: Path, data: Any, private: bool = False) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", private)


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or half written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def locked(lock_file: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold the exclusive lock on `lock_file`; yields False (without waiting) when not blocking and it is taken."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def rotate(log: Path) -> None:
    """Keep the previous run's log as <log>.1."""
    if log.exists():
        os.replace(log, log.with_name(log.name + ".1"))
