"""One server per preset per run, shared by every process of the run (pytest-xdist workers).

The first process to need a preset starts its server under a file lock and writes a state file; the
others find it there and take a reference. The last one out stops it. The controller reaps whatever a
crashed worker left behind (:func:`reap`). Without xdist the same protocol runs with one process, so
there is one code path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import psutil
from filelock import FileLock

from pytest_quantgate.credentials import redact
from pytest_quantgate.errors import ServerDiedError, ServerError, ServerStartError, ServerUnresponsiveError
from pytest_quantgate.server import PROBE_TIMEOUT_S, ServerProcess, probe, read_log_tail, spec_for, stop_group

if TYPE_CHECKING:
    from pytest_quantgate.presets import Preset

STATE = "server.json"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What every process of the run knows about a preset's server."""

    base_url: str
    pid: int | None  # None when attached to a server this run did not start
    load_s: float | None
    log: str | None
    argv: tuple[str, ...]
    attached: bool


class Lease:
    """A reference to a running server. :meth:`release` exactly once.

    A lease also knows when its server has failed (ended, or stopped answering) and from then on fails
    every request at once. The first failure of a preset in the run carries the server's log tail; the
    later ones, in this process or in any other of the run, refer to it instead of repeating it.
    """

    def __init__(
        self,
        info: ServerInfo,
        state_dir: Path | None,
        owned: ServerProcess | None,
        *,
        preset_id: str | None = None,
        health_path: str = "/health",
        api_key: str | None = None,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self.info = info
        self.preset_id = preset_id
        self._state_dir = state_dir
        self._owned = owned
        self._health_path = health_path
        self._api_key = api_key
        self._probe_timeout_s = probe_timeout_s
        self._released = False
        self._failure: tuple[type[ServerError], str] | None = None  # raised before every later request
        self._process = _ProcessState(info.pid) if info.pid is not None else None

    @property
    def base_url(self) -> str:
        return self.info.base_url

    def alive(self) -> bool:
        if self._process is None:
            return True  # attached: the client's own errors say whether it answers
        if self._owned is not None and not self._owned.alive():
            return False
        # Also for a server of our own: killed, a multi-threaded server's main thread is a zombie before the
        # process can be reaped (poll() still says running while its port already refuses connections).
        return self._process.running()

    def check_alive(self) -> None:
        """Raise ServerDiedError once the process is gone, ServerUnresponsiveError once it was found not
        answering (:meth:`check_answering`); either ever after. Cheap: called before every request."""
        if self._failure is None and not self.alive():
            self._fail(ServerDiedError, f"{self._who()} is no longer running")
        if self._failure is not None:
            kind, message = self._failure
            raise kind(message)

    def check_answering(self, sent_at: float) -> None:
        """After a request sent at *sent_at* (seconds since the epoch) timed out: does the server still
        answer? Probe its health endpoint with a short deadline; if it does not answer, raise
        ServerUnresponsiveError, and the preset's remaining levels fail at once instead of each waiting out
        its own timeout. A server that answers was merely slow: nothing is raised."""
        self.check_alive()
        if self._state_dir is not None:  # another process of the run may have found out already
            self._adopt(_read(self._state_dir).get("failure"))
            self.check_alive()
        url = self.base_url + self._health_path
        problem = probe(url, timeout_s=self._probe_timeout_s, api_key=self._api_key)
        if problem is None:
            return
        since = time.strftime("%H:%M:%S", time.localtime(sent_at))
        what = f"a request sent then timed out, and GET {url} got {problem}"
        self._fail(ServerUnresponsiveError, f"{self._who()} has not answered since {since}: {what}")

    def _who(self) -> str:
        if self.info.pid is None:
            return f"the server at {self.base_url}"
        return f"the server (pid {self.info.pid}, {self.base_url})"

    def _fail(self, kind: type[ServerError], headline: str) -> NoReturn:
        """Record the failure (once per preset in the run) and raise it: with the log tail if this is the
        first report of it, else referring to the first."""
        if self._state_dir is not None:
            with _lock(self._state_dir):
                state = _read(self._state_dir)
                recorded = state.get("failure")
                if not recorded:
                    state["failure"] = {"kind": kind.__name__, "headline": headline}
                    _write(self._state_dir, state)
            if recorded:
                self._adopt(recorded)
                self.check_alive()
        self._adopt({"kind": kind.__name__, "headline": headline})
        where = f"preset {self.preset_id!r}: " if self.preset_id else ""
        message = f"{where}{headline}; the remaining levels of this preset fail at once"
        if self.info.argv:
            message += f"\n  command: {shlex.join(self.info.argv)}"
        error = kind(message)
        if self.info.log:
            log = Path(self.info.log)
            error.args = (f"{message}\n  log: {log} (its last lines: the report's server log section)",)
            error.log_tail = read_log_tail(log)
        raise error

    def _adopt(self, recorded: object) -> None:
        """Take on a failure recorded earlier (by this lease or another process), in its short form."""
        if self._failure is not None or not isinstance(recorded, dict):
            return
        kind = _FAILURES.get(str(recorded.get("kind")), ServerDiedError)
        where = f"preset {self.preset_id!r}: " if self.preset_id else ""
        message = f"{where}{recorded.get('headline')}; the remaining levels of this preset fail at once"
        if self.info.log:
            message += f"\n  log: {self.info.log} (its last lines are shown with this preset's first failure)"
        self._failure = (kind, message)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._process is not None:
            self._process.close()
        if self._state_dir is None:
            return
        with _lock(self._state_dir):
            state = _read(self._state_dir)
            state["refcount"] = max(0, int(state.get("refcount", 1)) - 1)
            if state["refcount"] == 0 and not state.get("stopped"):
                if self._owned is not None:
                    self._owned.stop()
                elif self.info.pid is not None:
                    stop_group(self.info.pid)
                state["stopped"] = True
            _write(self._state_dir, state)


class _ProcessState:
    """Whether a process still runs (is neither gone nor a zombie), cheaply enough to ask before every request.

    On Linux one read of ``/proc/<pid>/stat`` through a descriptor opened at the first question: ~4 µs, where
    psutil reads and parses the file anew (~15 µs, and ~10 µs more to look the process up). The descriptor
    stays with the process it was opened for: once that is reaped, reading it fails, whoever gets the pid
    next. Without /proc (macOS), psutil.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd: int | None = None
        self._opened = False  # tried already: no /proc, or closed (psutil from then on)
        self._process: psutil.Process | None = None

    def running(self) -> bool:
        if not self._opened:
            self._opened = True
            with contextlib.suppress(OSError):  # no /proc, or the process is gone already: psutil says which
                self._fd = os.open(f"/proc/{self.pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        if (fd := self._fd) is not None:
            try:
                stat = os.pread(fd, 512, 0)
            except OSError:  # ESRCH: reaped
                return False
            # "pid (name) S ...": the state letter follows the last ")", as a name may hold one too.
            return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"")
        try:
            if self._process is None:
                self._process = psutil.Process(self.pid)
            return self._process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def close(self) -> None:
        self._opened = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_FAILURES: dict[str, type[ServerError]] = {
    ServerDiedError.__name__: ServerDiedError,
    ServerUnresponsiveError.__name__: ServerUnresponsiveError,
}


def attach(base_url: str, preset: Preset | None = None) -> Lease:
    """A lease on a server someone else runs (``--base-url`` or a preset with driver ``external``)."""
    info = ServerInfo(base_url=base_url.rstrip("/"), pid=None, load_s=None, log=None, argv=(), attached=True)
    if preset is None:
        return Lease(info, None, None)
    return Lease(info, None, None, preset_id=preset.id, health_path=preset.health_endpoint, api_key=preset.api_key())


def acquire(preset: Preset, state_dir: Path, *, shared: bool, probe_timeout_s: float = PROBE_TIMEOUT_S) -> Lease:
    """Start *preset*'s server, or take a reference to the one another process of this run started.

    *shared* (under xdist) leaves the server free of the starting process's lifetime: that worker may
    finish before the others. Unshared, the kernel kills the server if this process dies uncleanly.
    *probe_timeout_s* is how long the server gets to answer its health endpoint after a request timed out.
    """
    if preset.driver == "external":
        assert preset.base_url is not None  # the preset model requires it for this driver
        return attach(preset.base_url, preset)

    def lease(state: dict[str, Any], owned: ServerProcess | None) -> Lease:
        made = Lease(
            _info(state),
            state_dir,
            owned,
            preset_id=preset.id,
            health_path=preset.health_endpoint,
            api_key=preset.api_key(),
            probe_timeout_s=probe_timeout_s,
        )
        made._adopt(state.get("failure"))  # a server found failed before this process came: fail at once
        return made

    state_dir.mkdir(parents=True, exist_ok=True)
    with _lock(state_dir):
        state = _read(state_dir)
        if state.get("error"):
            raise ServerStartError(state["error"])
        if state and not state.get("stopped"):
            state["refcount"] = int(state.get("refcount", 0)) + 1
            _write(state_dir, state)
            return lease(state, None)
        spec = spec_for(preset)
        try:
            proc = ServerProcess.start(spec, state_dir / "server.log", tie_to_parent=not shared)
        except ServerStartError as exc:
            # Later processes fail at once with the same message instead of waiting out the timeout.
            _write(state_dir, {"error": f"preset {preset.id!r}: {exc}"})
            raise
        state = {
            "pid": proc.pid,
            "base_url": proc.base_url,
            "load_s": proc.load_s,
            "log": str(proc.log_path),
            "argv": redact(spec.argv, spec.secrets),
            "refcount": 1,
            "stopped": False,
            "started_at": time.time(),
        }
        _write(state_dir, state)
        return lease(state, proc)


def read_info(state_dir: Path) -> ServerInfo | None:
    """The state a run left for a preset (for the results file), or None if no server was started."""
    state = _read(state_dir)
    return _info(state) if state.get("base_url") else None


def reap(run_dir: Path) -> list[int]:
    """Stop every server of this run that is still up (a crashed worker's). Returns the pids stopped."""
    stopped = []
    for path in run_dir.glob(f"*/{STATE}"):
        with _lock(path.parent):
            state = _read(path.parent)
            pid = state.get("pid")
            if pid and not state.get("stopped"):
                stop_group(int(pid))
                state["stopped"] = True
                _write(path.parent, state)
                stopped.append(int(pid))
    return stopped


def _info(state: dict[str, Any]) -> ServerInfo:
    return ServerInfo(
        base_url=state["base_url"],
        pid=state.get("pid"),
        load_s=state.get("load_s"),
        log=state.get("log"),
        argv=tuple(state.get("argv", ())),
        attached=False,
    )


def _lock(state_dir: Path) -> FileLock:
    return FileLock(str(state_dir / ".server.lock"))


def _read(state_dir: Path) -> dict[str, Any]:
    with contextlib.suppress(FileNotFoundError):
        data = json.loads((state_dir / STATE).read_text())
        if isinstance(data, dict):
            return data
    return {}


def _write(state_dir: Path, state: dict[str, Any]) -> None:
    tmp = state_dir / f".{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(state_dir / STATE)
