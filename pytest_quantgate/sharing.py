"""One server per preset per run, shared by every process of the run (pytest-xdist workers).

The first process to need a preset starts its server under a file lock and writes a state file; the
others find it there and take a reference. The last one out stops it. The controller reaps whatever a
crashed worker left behind (:func:`reap`). Without xdist the same protocol runs with one process, so
there is one code path.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from filelock import FileLock

from pytest_quantgate.credentials import redact
from pytest_quantgate.errors import ServerDiedError, ServerStartError
from pytest_quantgate.server import ServerProcess, read_log_tail, spec_for, stop_group

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
    """A reference to a running server. :meth:`release` exactly once."""

    def __init__(self, info: ServerInfo, state_dir: Path | None, owned: ServerProcess | None) -> None:
        self.info = info
        self._state_dir = state_dir
        self._owned = owned
        self._released = False
        self._dead_message: str | None = None

    @property
    def base_url(self) -> str:
        return self.info.base_url

    def alive(self) -> bool:
        if self.info.pid is None:
            return True  # attached: the client's own errors say whether it answers
        if self._owned is not None:
            return self._owned.alive()
        try:
            return psutil.Process(self.info.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def check_alive(self) -> None:
        """Raise ServerDiedError with the server's log tail once the process is gone (and ever after)."""
        if self._dead_message is None and not self.alive():
            log = Path(self.info.log) if self.info.log else None
            tail = read_log_tail(log) if log else ""
            self._dead_message = (
                f"the server (pid {self.info.pid}, {self.info.base_url}) is no longer running; the "
                f"remaining levels of this preset fail at once\n  command: {' '.join(self.info.argv)}\n"
                f"  log: {self.info.log}\n--- last lines of the server log ---\n{tail}"
            )
        if self._dead_message is not None:
            raise ServerDiedError(self._dead_message)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
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


def attach(base_url: str) -> Lease:
    """A lease on a server someone else runs (``--base-url`` or a preset with driver ``external``)."""
    info = ServerInfo(base_url=base_url.rstrip("/"), pid=None, load_s=None, log=None, argv=(), attached=True)
    return Lease(info, None, None)


def acquire(preset: Preset, state_dir: Path, *, shared: bool) -> Lease:
    """Start *preset*'s server, or take a reference to the one another process of this run started.

    *shared* (under xdist) leaves the server free of the starting process's lifetime: that worker may
    finish before the others. Unshared, the kernel kills the server if this process dies uncleanly.
    """
    if preset.driver == "external":
        assert preset.base_url is not None  # the preset model requires it for this driver
        return attach(preset.base_url)
    state_dir.mkdir(parents=True, exist_ok=True)
    with _lock(state_dir):
        state = _read(state_dir)
        if state.get("error"):
            raise ServerStartError(state["error"])
        if state and not state.get("stopped"):
            state["refcount"] = int(state.get("refcount", 0)) + 1
            _write(state_dir, state)
            return Lease(_info(state), state_dir, None)
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
        return Lease(_info(state), state_dir, proc)


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
