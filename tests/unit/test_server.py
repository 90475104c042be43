"""Tests of pytest_quantgate.server with real processes: start-up failures, readiness, the stop ladder.

The processes are small Python scripts (tests/peers/fake_server.py and ``-c`` one-liners): the machinery
under test is about processes, ports and signals, which they exercise for real.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_quantgate.errors import InstallError, PresetError, ServerDiedError, ServerStartError
from pytest_quantgate.presets import Preset
from pytest_quantgate.server import (
    ServerProcess,
    ServerSpec,
    free_port,
    probe,
    read_log_tail,
    spec_for,
    stop_group,
)

FAKE = Path(__file__).parents[1] / "peers" / "fake_server.py"


def fake_argv(port: int, *flags: str) -> tuple[str, ...]:
    return (sys.executable, str(FAKE), "--port", str(port), *flags)


def spec(argv: tuple[str, ...], port: int = 0, timeout: float = 10.0, **kw) -> ServerSpec:
    return ServerSpec(argv=argv, port=port, startup_timeout_s=timeout, **kw)


def gone(pid: int) -> bool:
    """No such process, or only a zombie that holds nothing (its parent has not reaped it yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def log_line(log: Path, pattern: str, timeout: float = 5.0) -> re.Match[str]:
    assert wait_for(lambda: re.search(pattern, read_log_tail(log, 100)) is not None, timeout), read_log_tail(log)
    match = re.search(pattern, read_log_tail(log, 100))
    assert match is not None
    return match


# -- start-up ---------------------------------------------------------------------------------------------


def test_a_server_that_exits_at_once_reports_argv_code_time_and_log(tmp_path: Path) -> None:
    code = "import sys; print('loading model'); print('error: failed to open /m.gguf', file=sys.stderr); sys.exit(3)"
    argv = (sys.executable, "-c", code)
    log = tmp_path / "logs" / "server.log"
    started = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        ServerProcess.start(spec(argv, free_port()), log)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert re.match(r"the server exited with code 3 after \d+\.\d s\n", message)
    assert f"  command: {shlex.join(argv)}\n" in message
    assert f"  log: {log}\n" in message
    assert message.endswith("--- last lines of the server log ---\nloading model\nerror: failed to open /m.gguf")


def test_a_server_that_never_listens_times_out_within_the_startup_timeout(tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "import time; print('loading', flush=True); time.sleep(30)")
    started = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        ServerProcess.start(spec(argv, free_port(), timeout=1.0), tmp_path / "server.log")
    waited = time.monotonic() - started
    assert 1.0 <= waited < 4.0
    message = str(info.value)
    assert message.startswith("the server did not answer 200 on /health within 1 s (raise startup_timeout in the")
    assert re.search(r"after 1\.\d s", message)
    assert message.endswith("\nloading")
    assert not [p for p in psutil.Process().children(recursive=True) if "time.sleep(30)" in " ".join(p.cmdline())]


def test_a_health_endpoint_that_is_not_200_is_not_ready(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(ServerStartError, match="did not answer 200 on /health within 1 s"):
        ServerProcess.start(spec(fake_argv(port, "--health-status", "503"), port, timeout=1.0), tmp_path / "s.log")


def test_a_program_that_cannot_be_started(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError, match=r"cannot start '/nonexistent/llama-server': No such file or directory"):
        ServerProcess.start(spec(("/nonexistent/llama-server", "-m", "x")), tmp_path / "s.log")


def test_a_server_that_answers_health_is_ready_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess.start(spec(fake_argv(port), port, env={"QG_MARK": "1"}), tmp_path / "server.log")
    try:
        assert server.alive()
        assert server.load_s is not None and 0 < server.load_s < 10
        assert server.base_url == f"http://127.0.0.1:{port}"
        assert psutil.Process(server.pid).environ().get("QG_MARK") == "1"
        server.check_alive()  # does not raise
        assert "listening on 127.0.0.1" in server.log_tail()
    finally:
        code = server.stop(grace_s=2.0)
    assert code == 0
    assert not server.alive()
    assert gone(server.pid)
    assert "exiting on SIGTERM 1" in server.log_tail()


def test_quiesce_waits_before_starting(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    with ServerProcess.start(spec(fake_argv(port), port, quiesce_s=0.3), tmp_path / "s.log") as server:
        assert server.alive()
    assert time.monotonic() - started >= 0.3
    assert not server.alive()


# -- stopping ---------------------------------------------------------------------------------------------


def test_a_server_that_ignores_the_first_sigterm_stops_on_the_second(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess.start(spec(fake_argv(port, "--ignore-sigterm", "1"), port), tmp_path / "s.log")
    started = time.monotonic()
    code = server.stop(grace_s=1.0)
    assert code == 0
    assert time.monotonic() - started < 2.5
    log = server.log_tail()
    assert "ignored SIGTERM 1" in log and "exiting on SIGTERM 2" in log
    assert gone(server.pid)


def test_a_server_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess.start(spec(fake_argv(port, "--ignore-sigterm", "99"), port), tmp_path / "s.log")
    code = server.stop(grace_s=0.6)
    assert code == -9
    assert "ignored SIGTERM 2" in server.log_tail()
    assert gone(server.pid)


def test_children_in_the_process_group_are_killed_too(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "s.log"
    server = ServerProcess.start(spec(fake_argv(port, "--child"), port), log)
    child = int(log_line(log, r"child pid (\d+)")[1])
    assert not gone(child)
    server.stop(grace_s=1.0)
    # The child ignores SIGTERM and outlives its parent; the final SIGKILL to the group takes it.
    assert wait_for(lambda: gone(child))
    assert gone(server.pid)


def test_a_stopped_server_is_continued_so_that_it_obeys_sigterm(tmp_path: Path) -> None:
    # A SIGSTOPped server keeps a SIGTERM pending until it runs again: without SIGCONT the ladder would end
    # in SIGKILL (code -9) after the whole grace period, the server's own shutdown never run.
    port = free_port()
    server = ServerProcess.start(spec(fake_argv(port), port), tmp_path / "s.log")
    os.kill(server.pid, signal.SIGSTOP)
    assert wait_for(lambda: psutil.Process(server.pid).status() == psutil.STATUS_STOPPED)
    assert server.stop(grace_s=4.0) == 0
    assert "exiting on SIGTERM 1" in server.log_tail()


def test_stop_group_continues_a_stopped_server_too(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess.start(spec(fake_argv(port), port), tmp_path / "s.log")
    os.kill(server.pid, signal.SIGSTOP)
    assert wait_for(lambda: psutil.Process(server.pid).status() == psutil.STATUS_STOPPED)
    stop_group(server.pid, grace_s=4.0)
    assert gone(server.pid)
    assert server.returncode == 0


def test_probe_tells_a_server_that_answers_from_one_that_does_not(tmp_path: Path) -> None:
    port = free_port()
    assert probe(f"http://127.0.0.1:{port}/health", timeout_s=1.0).startswith("no answer: ConnectError(")
    with ServerProcess.start(spec(fake_argv(port), port), tmp_path / "s.log") as server:
        assert probe(f"{server.base_url}/health", timeout_s=1.0) is None
        assert probe(f"{server.base_url}/no-such-path", timeout_s=1.0) is None  # a 404 is an answer too
        os.kill(server.pid, signal.SIGSTOP)
        try:
            assert probe(f"{server.base_url}/health", timeout_s=1.0) == "no answer within 1 s (ReadTimeout)"
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert probe(f"{server.base_url}/health", timeout_s=1.0) is None


def test_check_alive_raises_with_the_log_once_the_server_is_gone(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "s.log"
    server = ServerProcess.start(spec(fake_argv(port), port), log)
    psutil.Process(server.pid).kill()
    assert wait_for(lambda: not server.alive())
    with pytest.raises(ServerDiedError) as info:
        server.check_alive()
    message = str(info.value)
    assert message.startswith("the server exited with code -9 while the run still needed it\n")
    assert f"  log: {log}" in message
    assert "listening on 127.0.0.1" in message
    assert server.returncode == -9
    server.stop()


def test_stop_group_stops_a_server_started_elsewhere(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess.start(spec(fake_argv(port, "--ignore-sigterm", "99"), port), tmp_path / "s.log")
    started = time.monotonic()
    stop_group(server.pid, grace_s=0.6)
    # The process is this test's child, so it lingers as a zombie until reaped: stop_group must not wait
    # out its whole ladder on a zombie (SIGTERM 0.3 s, SIGTERM 0.3 s, SIGKILL 2 s).
    assert time.monotonic() - started < 1.5
    assert gone(server.pid)
    assert server.returncode == -9


def test_stop_group_waits_for_a_live_child_after_the_leader_is_gone(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "s.log"
    server = ServerProcess.start(spec(fake_argv(port, "--child"), port), log)
    child = int(log_line(log, r"child pid (\d+)")[1])
    stop_group(server.pid, grace_s=0.4)
    assert server.returncode == 0  # the leader obeyed the first SIGTERM …
    assert wait_for(lambda: gone(child))  # … and the child that ignored it was not forgotten


# -- helpers ----------------------------------------------------------------------------------------------


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_base_url_brackets_ipv6_hosts() -> None:
    assert ServerSpec(argv=("x",), host="::1", port=8080).base_url == "http://[::1]:8080"
    assert ServerSpec(argv=("x",), host="127.0.0.1", port=8080).base_url == "http://127.0.0.1:8080"


def test_read_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(100)) + b"bad \xff byte\n")
    assert read_log_tail(log, 3) == "line 98\nline 99\nbad \ufffd byte"
    assert read_log_tail(tmp_path / "missing.log") == ""


# -- spec_for ---------------------------------------------------------------------------------------------


@pytest.fixture
def fake_llama_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "bin" / "llama-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    monkeypatch.setenv("QUANTGATE_LLAMA_SERVER", str(binary))
    return binary


def gguf(tmp_path: Path, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(b"GGUF")
    return path


def test_spec_for_builds_the_llama_server_argv(tmp_path: Path, fake_llama_server: Path) -> None:
    model, mmproj = gguf(tmp_path), gguf(tmp_path, "mmproj.gguf")
    preset = Preset(
        id="p", name="p", driver="llamacpp", source=tmp_path / "p.yaml", model=model, mmproj=mmproj,
        context_size=4096, parallel=2, extra_args=("--threads", "2"), env=(("A", "1"),), startup_timeout_s=33.0,
        quiesce_s=0.5, health_endpoint="/healthz",
    )  # fmt: skip
    s = spec_for(preset, port=5123)
    assert s.argv == (
        str(fake_llama_server), "-m", str(model), "--host", "127.0.0.1", "--port", "5123", "-np", "2",
        "-c", "4096", "--mmproj", str(mmproj), "--threads", "2",
    )  # fmt: skip
    assert (s.host, s.port, s.health_path, s.startup_timeout_s, s.quiesce_s) == ("127.0.0.1", 5123, "/healthz", 33, 0.5)
    assert dict(s.env) == {"A": "1", "LLAMA_ARG_LOG_VERBOSITY": "4"}  # the buffer report: memory_report.py
    assert s.api_key is None


def test_spec_for_takes_the_preset_port_else_a_free_one(tmp_path: Path, fake_llama_server: Path) -> None:
    base = Preset(id="p", name="p", driver="llamacpp", source=None, model=gguf(tmp_path))
    assert spec_for(Preset(**{**_fields(base), "port": 7110})).port == 7110
    chosen = spec_for(base).port
    assert chosen > 0
    assert f"--port {chosen}" in " ".join(spec_for(base, port=chosen).argv)
    bare = spec_for(base, port=1).argv
    assert "-c" not in bare and "--mmproj" not in bare


def test_the_preset_binary_comes_before_the_environment(tmp_path: Path, fake_llama_server: Path) -> None:
    own = tmp_path / "own-llama-server"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    preset = Preset(id="p", name="p", driver="llamacpp", source=None, model=gguf(tmp_path), binary=str(own))
    assert spec_for(preset, port=1).argv[0] == str(own)
    broken = Preset(id="p", name="p", driver="llamacpp", source=None, model=gguf(tmp_path), binary="/nope/srv")
    with pytest.raises(InstallError, match="'/nope/srv' \\(from the preset\\) is not an executable file"):
        spec_for(broken, port=1)


def test_a_missing_gguf_is_a_clear_error(tmp_path: Path, fake_llama_server: Path) -> None:
    preset = Preset(id="gone", name="gone", driver="llamacpp", source=tmp_path / "g.yaml", model=tmp_path / "no.gguf")
    with pytest.raises(ServerStartError) as info:
        spec_for(preset)
    message = str(info.value)
    assert message.startswith(f"preset 'gone' ({tmp_path / 'g.yaml'}): model file '{tmp_path / 'no.gguf'}' does not")
    assert "fix 'model' in the preset" in message


def test_the_command_driver_fills_host_port_and_model(tmp_path: Path) -> None:
    preset = Preset(
        id="c", name="c", driver="command", source=None, host="127.0.0.1", model=tmp_path / "m.gguf",
        command=("srv", "--listen={host}:{port}", "-m", "{model}", "--kw", '{"enable_thinking": false}'),
        extra_args=("--verbose",),
    )  # fmt: skip
    s = spec_for(preset, port=4321)
    assert s.argv == (
        "srv", "--listen=127.0.0.1:4321", "-m", str(tmp_path / "m.gguf"), "--kw", '{"enable_thinking": false}',
        "--verbose",
    )  # fmt: skip


def test_an_unknown_placeholder_is_an_error_naming_the_known_ones() -> None:
    preset = Preset(id="c", name="c", driver="command", source=None, command=("srv", "--port", "{prot}"))
    with pytest.raises(ServerStartError, match=r"command placeholder .*prot.* is unknown; use \{host\}, \{port\} or"):
        spec_for(preset, port=1)


def test_an_external_preset_has_nothing_to_start() -> None:
    preset = Preset(id="x", name="x", driver="external", source=None, base_url="http://h:1")
    with pytest.raises(ServerStartError, match="driver 'external' attaches to a running server; nothing to start"):
        spec_for(preset)


def test_spec_for_reads_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    preset = Preset(id="c", name="c", driver="command", source=None, command=("srv",), api_key_env="QG_KEY")
    monkeypatch.setenv("QG_KEY", "sk-9")
    assert spec_for(preset, port=1).api_key == "sk-9"
    monkeypatch.delenv("QG_KEY")
    with pytest.raises(PresetError, match="QG_KEY"):
        spec_for(preset, port=1)


def _fields(preset: Preset) -> dict:
    return {name: getattr(preset, name) for name in Preset.__slots__}
