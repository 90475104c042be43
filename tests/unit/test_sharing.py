"""Tests of pytest_quantgate.sharing: one server per preset per run, reference-counted, reaped after a crash.

The server is tests/peers/fake_server.py started through a ``command`` preset: a real process on a real
port, so the lock, the state file and the stop ladder all run for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pytest_quantgate.errors import ServerDiedError, ServerStartError
from pytest_quantgate.presets import Preset
from pytest_quantgate.sharing import STATE, acquire, attach, read_info, reap

FAKE = Path(__file__).parents[1] / "peers" / "fake_server.py"
REPO = Path(__file__).parents[2]


def fake_preset(*flags: str, preset_id: str = "fake") -> Preset:
    command = (sys.executable, str(FAKE), "--host", "{host}", "--port", "{port}", *flags)
    return Preset(id=preset_id, name=preset_id, driver="command", source=None, command=command, startup_timeout_s=10)


def state(state_dir: Path) -> dict:
    return json.loads((state_dir / STATE).read_text())


def fake_servers() -> list[psutil.Process]:
    """Fake servers started by this test process (not zombies)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if str(FAKE) in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("last", ["owner", "other"])
def test_two_acquires_share_one_server_that_stops_with_the_last_release(tmp_path: Path, last: str) -> None:
    first = acquire(fake_preset(), tmp_path, shared=False)
    second = acquire(fake_preset(), tmp_path, shared=False)
    try:
        assert first.info.pid == second.info.pid
        assert first.base_url == second.base_url
        assert len(fake_servers()) == 1
        assert state(tmp_path)["refcount"] == 2
        assert first.alive() and second.alive()
    finally:
        leases = [second, first] if last == "owner" else [first, second]
        leases[0].release()
        assert state(tmp_path)["refcount"] == 1
        assert not gone(first.info.pid)  # one reference left: still up
        started = time.monotonic()
        leases[1].release()
    assert time.monotonic() - started < 3
    assert state(tmp_path)["refcount"] == 0 and state(tmp_path)["stopped"] is True
    assert gone(first.info.pid)
    assert fake_servers() == []


def test_release_is_idempotent(tmp_path: Path) -> None:
    a = acquire(fake_preset(), tmp_path, shared=False)
    b = acquire(fake_preset(), tmp_path, shared=False)
    b.release()
    b.release()
    assert state(tmp_path)["refcount"] == 1
    assert not gone(a.info.pid)
    a.release()
    assert gone(a.info.pid)


def test_the_state_file_describes_the_server(tmp_path: Path) -> None:
    lease = acquire(fake_preset(), tmp_path, shared=False)
    try:
        info = read_info(tmp_path)
        assert info == lease.info
        assert info is not None and not info.attached
        assert info.argv[:2] == (sys.executable, str(FAKE))
        assert "{port}" not in info.argv and info.base_url.endswith(info.argv[info.argv.index("--port") + 1])
        assert info.load_s is not None and info.load_s > 0
        assert info.log == str(tmp_path / "server.log")
    finally:
        lease.release()
    assert read_info(tmp_path / "never-started") is None


def test_a_new_acquire_after_the_last_release_starts_a_new_server(tmp_path: Path) -> None:
    old = acquire(fake_preset(), tmp_path, shared=False)
    old.release()
    new = acquire(fake_preset(), tmp_path, shared=False)
    try:
        assert new.info.pid != old.info.pid
        assert state(tmp_path) | {"refcount": 1, "stopped": False} == state(tmp_path)
    finally:
        new.release()


def test_a_start_failure_is_recorded_so_the_next_acquire_fails_at_once(tmp_path: Path) -> None:
    crash = (sys.executable, "-c", "import sys; print('error: unknown argument: --flash-attn'); sys.exit(1)")
    preset = Preset(id="bad", name="bad", driver="command", source=None, command=crash, startup_timeout_s=10)
    with pytest.raises(ServerStartError) as first:
        acquire(preset, tmp_path, shared=False)
    assert "unknown argument: --flash-attn" in str(first.value)
    log_before = (tmp_path / "server.log").read_text()
    started = time.monotonic()
    with pytest.raises(ServerStartError) as second:
        acquire(preset, tmp_path, shared=False)
    assert time.monotonic() - started < 0.5
    assert str(second.value) == f"preset 'bad': {first.value}"
    assert (tmp_path / "server.log").read_text() == log_before  # nothing was started the second time


def test_a_dead_server_fails_every_later_check_with_its_log(tmp_path: Path) -> None:
    owner = acquire(fake_preset(), tmp_path, shared=False)
    other = acquire(fake_preset(), tmp_path, shared=False)
    try:
        owner.check_alive()
        other.check_alive()
        psutil.Process(owner.info.pid).kill()
        deadline = time.monotonic() + 5
        while other.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        for lease in (owner, other):
            with pytest.raises(ServerDiedError) as info:
                lease.check_alive()
            message = str(info.value)
            assert f"the server (pid {owner.info.pid}, {owner.base_url}) is no longer running" in message
            assert "listening on 127.0.0.1" in message  # the log tail
        with pytest.raises(ServerDiedError):
            other.check_alive()  # and ever after
    finally:
        other.release()
        owner.release()


def test_an_external_preset_is_attached_not_started(tmp_path: Path) -> None:
    preset = Preset(id="x", name="x", driver="external", source=None, base_url="http://10.1.2.3:8080/")
    lease = acquire(preset, tmp_path / "x", shared=False)
    assert lease.info.attached and lease.info.pid is None
    assert lease.base_url == "http://10.1.2.3:8080"
    assert lease.alive()
    lease.check_alive()
    lease.release()
    assert not (tmp_path / "x").exists()
    assert attach("http://h:1/").info == lease.info.__class__("http://h:1", None, None, None, (), True)


CRASHING_WORKER = """
import os, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from pytest_quantgate.presets import Preset
from pytest_quantgate.sharing import acquire
preset = Preset(id="fake", name="fake", driver="command", source=None, startup_timeout_s=10,
                command=({python!r}, {fake!r}, "--host", "{{host}}", "--port", "{{port}}"))
lease = acquire(preset, Path({state_dir!r}), shared=True)
print(lease.info.pid, flush=True)
os._exit(1)  # a worker that dies without releasing
"""


def test_reap_stops_what_a_crashed_worker_left_behind(tmp_path: Path) -> None:
    state_dir = tmp_path / "run" / "fake"
    script = CRASHING_WORKER.format(repo=str(REPO), python=sys.executable, fake=str(FAKE), state_dir=str(state_dir))
    worker = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60)
    assert worker.returncode == 1, worker.stderr
    pid = int(worker.stdout.split()[0])
    try:
        assert not gone(pid)  # shared: it outlived the worker
        assert reap(tmp_path / "run") == [pid]
        assert gone(pid)
        assert state(state_dir)["stopped"] is True
        assert reap(tmp_path / "run") == []  # nothing left the second time
    finally:
        if not gone(pid):
            psutil.Process(pid).kill()
