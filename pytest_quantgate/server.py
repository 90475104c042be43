"""Run one model server: start it in its own process group, wait until it answers, stop it for sure.

No pytest import here: the pytest layer wraps :class:`ServerProcess` in a session fixture, and the CLI and
the tiny-model builder use it directly.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

import httpx
import psutil

from pytest_quantgate.credentials import redact
from pytest_quantgate.errors import ServerDiedError, ServerStartError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from types import TracebackType

    from pytest_quantgate.presets import Preset

LOG_TAIL_LINES = 30
# How long a server that just let a request time out gets to answer its health endpoint. A live
# llama-server answers /health from its HTTP thread in milliseconds, even while every slot is busy; a
# stopped or wedged process does not answer at all.
PROBE_TIMEOUT_S = 5.0
# Readiness is polled this often: a refused connect on loopback costs microseconds, and the figure that
# matters (delay between "can answer" and "first request") is bounded by this interval.
_POLL_S = 0.005


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """Everything needed to start one server process and know when it is ready."""

    argv: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    startup_timeout_s: float = 120.0
    api_key: str | None = None
    quiesce_s: float = 0.0
    secrets: tuple[str, ...] = ()  # values never shown: see credentials.redact

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def probe(url: str, *, timeout_s: float = PROBE_TIMEOUT_S, api_key: str | None = None) -> str | None:
    """None if *url* answers anything at all within *timeout_s*, else what went wrong (for a message).

    Any HTTP status counts as an answer: the question is whether the process still serves requests, not
    whether it likes this one (an attached server may well have no health endpoint).
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers) as client:
            client.get(url)
    except httpx.TimeoutException as exc:
        return f"no answer within {timeout_s:g} s ({type(exc).__name__})"
    except httpx.TransportError as exc:
        return f"no answer: {exc!r}"
    return None


def read_log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last *lines* lines of a log file ('' if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class ServerProcess:
    """A started server. Use :meth:`start`; always :meth:`stop` (or use it as a context manager)."""

    def __init__(self, spec: ServerSpec, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.load_s: float | None = None
        self._proc = proc
        self._started = time.monotonic()

    @classmethod
    def start(cls, spec: ServerSpec, log_path: Path, *, tie_to_parent: bool = True) -> Self:
        """Start the server and block until it answers its health endpoint.

        *tie_to_parent* asks the kernel to kill the server if this process dies without cleaning up
        (Linux only). Leave it off for a server other processes keep using after this one exits.
        """
        if spec.quiesce_s > 0:
            time.sleep(spec.quiesce_s)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env}
        with log_path.open("ab") as log:
            try:
                proc = subprocess.Popen(
                    list(spec.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if tie_to_parent and sys.platform == "linux" else None,
                )
            except OSError as exc:
                command = _shell(spec.argv, spec.secrets)
                raise ServerStartError(
                    f"cannot start {spec.argv[0]!r}: {exc.strerror or exc}\n  command: {command}"
                ) from exc
        server = cls(spec, proc, log_path)
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    # -- state -----------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def base_url(self) -> str:
        return self.spec.base_url

    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return read_log_tail(self.log_path, lines)

    def check_alive(self) -> None:
        """Raise ServerDiedError (with the log tail) if the process has ended."""
        code = self._proc.poll()
        if code is not None:
            raise ServerDiedError(
                f"the server exited with code {code} while the run still needed it\n"
                f"  command: {_shell(self.spec.argv, self.spec.secrets)}\n  log: {self.log_path}\n"
                f"--- last lines of the server log ---\n{self.log_tail()}"
            )

    # -- lifecycle -------------------------------------------------------------------------------

    def _wait_ready(self) -> None:
        deadline = self._started + self.spec.startup_timeout_s
        url = self.spec.base_url + self.spec.health_path
        headers = {"Authorization": f"Bearer {self.spec.api_key}"} if self.spec.api_key else {}
        with httpx.Client(timeout=httpx.Timeout(2.0, connect=0.5), headers=headers) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise ServerStartError(self._start_failure(f"exited with code {code}"))
                with contextlib.suppress(httpx.TransportError):
                    if client.get(url).status_code == 200:
                        self.load_s = time.monotonic() - self._started
                        return
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        self._start_failure(
                            f"did not answer 200 on {self.spec.health_path} within "
                            f"{self.spec.startup_timeout_s:g} s (raise startup_timeout in the preset if "
                            "the model needs longer to load)"
                        )
                    )
                time.sleep(_POLL_S)

    def _start_failure(self, what: str) -> str:
        waited = time.monotonic() - self._started
        return (
            f"the server {what} after {waited:.1f} s\n  command: {_shell(self.spec.argv, self.spec.secrets)}\n"
            f"  log: {self.log_path}\n--- last lines of the server log ---\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 5.0) -> int | None:
        """SIGTERM the process group, wait, SIGTERM again, then SIGKILL. Returns the exit code.

        llama-server has been seen to ignore the first SIGTERM after a client abandoned a stream, so a
        second one is sent before resorting to SIGKILL. Each SIGTERM is followed by a SIGCONT: a stopped
        server (SIGSTOP, a debugger) would otherwise keep it pending until the SIGKILL.
        """
        for sig, wait in (
            (signal.SIGTERM, grace_s / 2),
            (signal.SIGTERM, grace_s / 2),
            (signal.SIGKILL, 5.0),
        ):
            if self._proc.poll() is not None:
                break
            _signal_group(self._proc.pid, sig)
            _signal_group(self._proc.pid, signal.SIGCONT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=wait)
        # The leader may be gone while children of its group linger; they go too.
        _signal_group(self._proc.pid, signal.SIGKILL)
        return self._proc.poll()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def stop_group(pid: int, grace_s: float = 5.0) -> None:
    """Stop a server we did not start in this process (shared under xdist): same ladder as :meth:`stop`."""
    for sig, wait in ((signal.SIGTERM, grace_s / 2), (signal.SIGTERM, grace_s / 2), (signal.SIGKILL, 2.0)):
        if not _group_exists(pid):
            return
        _signal_group(pid, sig)
        _signal_group(pid, signal.SIGCONT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_exists(pid):
            time.sleep(0.05)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie stays in its group until its parent reaps it (that parent may be another process of the
    # run, or a PID 1 that never reaps), yet it holds no memory and no port: zombies alone are no server.
    return any(_live_member(proc, pgid) for proc in psutil.process_iter())


def _live_member(proc: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE
    except (OSError, psutil.Error):
        return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGKILL us when the parent thread dies (no orphan after a crash)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _shell(argv: Sequence[str], secrets: Sequence[str]) -> str:
    import shlex

    return shlex.join(redact(argv, secrets))


VERBOSITY_ENV = "LLAMA_ARG_LOG_VERBOSITY"
REPORT_VERBOSITY = 4
_VERBOSITY_FLAGS = ("-lv", "--verbosity", "--log-verbosity", "-v", "--verbose", "--log-verbose", "--log-disable")


def _sets_verbosity(argv: Sequence[str]) -> bool:
    """Whether the preset chose the server's log verbosity itself (then quantgate leaves it alone)."""
    return any(arg in _VERBOSITY_FLAGS or arg.startswith(tuple(f"{f}=" for f in _VERBOSITY_FLAGS)) for arg in argv)


def spec_for(preset: Preset, *, port: int | None = None) -> ServerSpec:
    """The argv and readiness check that start *preset* (driver ``llamacpp`` or ``command``)."""
    from pytest_quantgate.install import find_binary

    chosen = port if port is not None else (preset.port or free_port(preset.host))
    where = f"preset {preset.id!r} ({preset.source})"
    if preset.driver == "llamacpp":
        if preset.model is None or not preset.model.is_file():
            raise ServerStartError(
                f"{where}: model file {str(preset.model)!r} does not exist; fix 'model' in the preset"
            )
        if preset.draft is not None and preset.draft.model is not None and not preset.draft.model.is_file():
            raise ServerStartError(
                f"{where}: draft model file {str(preset.draft.model)!r} does not exist, so no figure of this preset "
                "(draft_acceptance included) can be measured; fix 'draft.model' in the preset"
            )
        argv = [str(find_binary("llama-server", preset.binary)), "-m", str(preset.model)]
        argv += ["--host", preset.host, "--port", str(chosen), "-np", str(preset.parallel)]
        if preset.context_size:
            argv += ["-c", str(preset.context_size)]
        if preset.mmproj is not None:
            argv += ["--mmproj", str(preset.mmproj)]
        argv += list(preset.extra_args)
    elif preset.driver == "command":
        values = {"host": preset.host, "port": str(chosen), "model": str(preset.model or "")}

        def fill(match: re.Match[str]) -> str:
            if match[1] not in values:
                raise ServerStartError(
                    f"{where}: command placeholder {match[0]!r} is unknown; use {{host}}, {{port}} or {{model}}"
                )
            return values[match[1]]

        # Only {name} is a placeholder: other braces (a JSON argument such as '{"enable_thinking": false}')
        # are passed on as they are.
        argv = [re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", fill, arg) for arg in preset.command]
        argv += list(preset.extra_args)
    else:
        raise ServerStartError(f"{where}: driver {preset.driver!r} attaches to a running server; nothing to start")
    api_key = preset.api_key()
    env = dict(preset.env)
    if preset.devices:  # indices into what this process sees: gpu/pinning.py
        from pytest_quantgate.gpu.pinning import pinning_env

        env.update(pinning_env(preset.devices))
    if preset.driver == "llamacpp" and not _sets_verbosity(argv):
        # llama.cpp logs its buffers (memory_report.py) at verbosity 4 in current builds; the environment
        # rather than -lv, so that a build without the option starts all the same.
        env.setdefault(VERBOSITY_ENV, str(REPORT_VERBOSITY))
    if api_key is not None:  # llama-server reads its key from there too: then it is in no argv or log
        env.setdefault("LLAMA_API_KEY", api_key)
    return ServerSpec(
        argv=tuple(argv),
        host=preset.host,
        port=chosen,
        env=env,
        health_path=preset.health_endpoint,
        startup_timeout_s=preset.startup_timeout_s,
        api_key=api_key,
        quiesce_s=preset.quiesce_s,
        secrets=preset.secrets,
    )
