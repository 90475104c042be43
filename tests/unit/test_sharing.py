"""Tests of pytest_quantgate.sharing: one server per preset per run, reference-counted, reaped after a crash.

The server is tests/peers/fake_server.py started through a ``command`` preset: a real process on a real
port, so the lock, the state file and the stop ladder all run for real.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil
import pytest

from pytest_quantgate.client import Client
from pytest_quantgate.errors import ClientError, ServerDiedError, ServerStartError, ServerUnresponsiveError
from pytest_quantgate.llm import Llm
from pytest_quantgate.presets import Preset
from pytest_quantgate.sharing import STATE, Lease, ServerInfo, acquire, attach, read_info, reap

if TYPE_CHECKING:
    from peers.broken_server import BrokenPeer

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


def test_a_dead_server_fails_every_later_check_showing_its_log_once(tmp_path: Path) -> None:
    owner = acquire(fake_preset(), tmp_path, shared=False)
    other = acquire(fake_preset(), tmp_path, shared=False)  # as another xdist worker would hold it
    try:
        owner.check_alive()
        other.check_alive()
        psutil.Process(owner.info.pid).kill()
        deadline = time.monotonic() + 5
        while other.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        messages, tails = [], []
        for lease in (owner, other, owner, other, owner):  # and ever after
            with pytest.raises(ServerDiedError) as info:
                lease.check_alive()
            messages.append(str(info.value))
            tails.append(info.value.log_tail)
        head = f"preset 'fake': the server (pid {owner.info.pid}, {owner.base_url}) is no longer running; the remaining"
        assert all(m.startswith(head) for m in messages), messages
        # The log tail once per preset in the run (a dead server's 191 failed levels once showed it 191 times);
        # every later failure says where it is.
        # The tail rides on the first error (the report shows it as a section, once) and on no later one.
        assert "listening on 127.0.0.1" in (tails[0] or "") and tails[1:] == [None] * 4
        assert not any("listening on 127.0.0.1" in m for m in messages)
        log = tmp_path / "server.log"
        assert messages[0].endswith(f"\n  log: {log} (its last lines: the report's server log section)")
        for later in messages[1:]:
            assert later.endswith(f"\n  log: {tmp_path / 'server.log'} (its last lines are shown with this preset's "
                                  "first failure)")  # fmt: skip
        assert state(tmp_path)["failure"]["kind"] == "ServerDiedError"
    finally:
        other.release()
        owner.release()


def llm_on(lease: Lease, sent: list[httpx.Request], *, stream: bool = False) -> Llm:
    """An ``llm`` as the fixture builds it, over a transport that counts the requests sent."""

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return super().handle_request(request)

    client = Client(lease.base_url, timeout_s=1.0, stream=stream, transport=Counting())
    return Llm(
        client, fake_preset(), iteration=1, before_request=lease.check_alive, after_timeout=lease.check_answering
    )


def test_a_server_that_stops_answering_fails_the_remaining_requests_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real process stopped with SIGSTOP, as a wedged server is: it keeps its port (the kernel still accepts
    # connections) and answers nothing.
    owner = acquire(fake_preset(), tmp_path, shared=False, probe_timeout_s=1.0)
    other = acquire(fake_preset(), tmp_path, shared=False)  # another worker's lease on the same server
    pid = owner.info.pid
    assert pid is not None
    late: Lease | None = None
    sent: list[httpx.Request] = []
    llm = llm_on(owner, sent)
    os.kill(pid, signal.SIGSTOP)
    try:
        before = time.time()
        with pytest.raises(ServerUnresponsiveError) as first:
            llm.complete("copy abc=")
        message = str(first.value)
        assert isinstance(first.value.__context__, ClientError)  # the request's own timeout, kept in the chain
        match = re.match(
            rf"preset 'fake': the server \(pid {pid}, {re.escape(owner.base_url)}\) has not answered since "
            rf"(\d\d:\d\d:\d\d): a request sent then timed out, and GET {re.escape(owner.base_url)}/health got no "
            r"answer within 1 s \(ReadTimeout\); the remaining levels of this preset fail at once\n",
            message,
        )
        assert match is not None, message
        after = time.time()
        assert match[1] in {time.strftime("%H:%M:%S", time.localtime(t)) for t in range(int(before), int(after) + 1)}
        assert "listening on 127.0.0.1" in (first.value.log_tail or "")
        assert len(sent) == 1
        for _ in range(3):  # the remaining levels: no request sent, so none waits out a timeout
            with pytest.raises(ServerUnresponsiveError) as later:
                llm.complete("copy abc=")
            assert str(later.value).startswith(message.partition("\n")[0])
            assert "listening on" not in str(later.value)
        assert len(sent) == 1
        # Another process whose own request timed out takes the finding over without probing again.
        monkeypatch.setattr("pytest_quantgate.sharing.probe", lambda *a, **k: pytest.fail("probed twice"))
        with pytest.raises(ServerUnresponsiveError) as adopted:
            other.check_answering(time.time())
        assert str(adopted.value) == str(later.value)
        # A process that joins the run afterwards fails at once too.
        late = acquire(fake_preset(), tmp_path, shared=False)
        with pytest.raises(ServerUnresponsiveError):
            late.check_alive()
    finally:
        os.kill(pid, signal.SIGCONT)
        for lease in (late, other, owner):
            if lease is not None:
                lease.release()
    assert gone(pid)


def test_a_timeout_on_a_server_that_still_answers_is_only_that_request_s_failure(broken_peer: BrokenPeer) -> None:
    # The loopback peer's "stall" mode stands in for a model slower than the timeout (a real server cannot be
    # made that slow on demand); it still answers GET requests.
    preset = Preset(id="slow", name="slow", driver="external", source=None, base_url=broken_peer.url("stall"))
    lease = attach(broken_peer.url("stall"), preset)
    sent: list[httpx.Request] = []
    llm = llm_on(lease, sent, stream=True)  # the peer stalls streams
    with pytest.raises(ClientError, match="timed out") as info:
        llm.complete("copy abc=")
    assert not isinstance(info.value, ServerUnresponsiveError)
    lease.check_alive()  # not failed: the next level asks again
    with pytest.raises(ClientError, match="timed out"):
        llm.complete("copy abc=")
    assert len(sent) == 2


def test_other_client_errors_do_not_probe_the_server(broken_peer: BrokenPeer) -> None:
    probed = []
    client = Client(broken_peer.url("status-500"), timeout_s=5)
    llm = Llm(client, fake_preset(), iteration=1, after_timeout=probed.append)
    with pytest.raises(ClientError, match="HTTP 500"):
        llm.chat("hi")
    assert probed == []


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


@pytest.mark.parametrize("procfs", [True, False], ids=["through-proc", "through-psutil"])
def test_a_server_reads_as_alive_until_it_is_a_zombie_and_after_it_is_reaped(
    procfs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read through a descriptor of /proc/<pid>/stat where there is one, else (macOS; here: /proc hidden)
    through psutil; a killed server's main thread is a zombie until reaped, and a zombie is not alive."""
    if not procfs:
        real_open = os.open

        def no_proc(path: str | os.PathLike[str], *args: object, **kwargs: object) -> int:
            if str(path).startswith("/proc/"):
                raise FileNotFoundError(path)
            return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", no_proc)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    info = ServerInfo(base_url="http://127.0.0.1:9", pid=child.pid, load_s=None, log=None, argv=(), attached=False)
    lease = Lease(info, None, None)  # not owned: only the process's state says
    try:
        assert lease.alive()
        assert lease.alive()  # asked again through what the first question opened
        child.kill()
        deadline = time.monotonic() + 60
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not lease.alive()
        child.wait()
        assert not lease.alive()
    finally:
        child.kill()
        child.wait()
        lease.release()
