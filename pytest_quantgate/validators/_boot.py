"""Supervisor of one sandboxed test run (internal; started by :mod:`pytest_quantgate.validators.sandbox`).

It runs as ``python -I -S _boot.py <config-fd>``, usually as PID 1 of fresh PID, mount and network namespaces
made by ``unshare``. ``-S`` keeps site-packages off the path, so this file may import the standard library only.

What it does, in order:

1. reads its configuration (JSON) from the pipe whose descriptor is ``argv[1]``; the run's nonce travels that
   way rather than in argv or the environment, where the candidate could read it back;
2. if asked (it runs in its own mount namespace), makes every mount read-only except the candidate's work
   directory and a small private ``/dev/shm``;
3. forks the pytest child, which sets the resource limits, drops to the run's own user id (or, inside a user
   namespace, drops every capability), forbids new privileges and execs pytest;
4. as the child's parent, ignores the signals a candidate could send it, reaps every process handed to it,
   and when pytest ends records how it ended on the report descriptor, then kills whatever the candidate left.

Records it writes carry the nonce, so that the parent can tell them from lines a candidate wrote.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

# Linux constants; ctypes gives no names for them.
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture since 5.12
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "arm64": 91}
_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_PR_SET_SECUREBITS = 28
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_RAISE = 2
_CAP_DAC_READ_SEARCH = 2
# NOROOT + NOROOT_LOCKED + NO_SETUID_FIXUP + NO_SETUID_FIXUP_LOCKED + KEEP_CAPS_LOCKED: uid 0 gains nothing on
# exec, and switching uid does not silently drop the capabilities we still mean to trim by hand.
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Signals a candidate could send its parent; the supervisor must outlive them to report the run.
_SHIELDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGPIPE,
    signal.SIGALRM,
)


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32))


class _Emitter:
    """Writes nonce-tagged JSON lines to the report descriptor."""

    def __init__(self, fd: int, nonce: str) -> None:
        self._fd = fd
        self._nonce = nonce
        self._seq = 0

    def __call__(self, kind: str, **fields: Any) -> None:
        record = {"nonce": self._nonce, "src": "boot", "seq": self._seq, "kind": kind, **fields}
        self._seq += 1
        # The parent judges a missing record as a failed run, which is the safe outcome.
        with contextlib.suppress(OSError):
            os.write(self._fd, (json.dumps(record) + "\n").encode())


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount_setattr(libc: ctypes.CDLL, path: str, flags: int, attr_set: int, attr_clr: int) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    result = libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, path.encode(), flags, ctypes.byref(attr), ctypes.sizeof(attr))
    _check(result, f"mount_setattr({path})")


def _make_root_readonly(writable: str) -> list[str]:
    """Make every mount read-only except ``writable`` and a private /dev/shm; return the guards set up."""
    libc = _libc()
    _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    # A bind mount of the work directory onto itself gives it a mount of its own, which can stay writable
    # while everything around it becomes read-only.
    _check(libc.mount(writable.encode(), writable.encode(), None, _MS_BIND | _MS_REC, None), "bind work dir")
    guards = []
    shm = "/dev/shm"
    if Path(shm).is_dir():
        # multiprocessing needs a writable /dev/shm; a small tmpfs of our own keeps the host's out of reach.
        options = b"size=64m,mode=1777"
        if libc.mount(b"tmpfs", shm.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options) == 0:
            guards.append("private-shm")
    _mount_setattr(libc, "/", _AT_RECURSIVE, _MOUNT_ATTR_RDONLY, 0)
    _mount_setattr(libc, writable, 0, 0, _MOUNT_ATTR_RDONLY)
    if guards:
        _mount_setattr(libc, shm, 0, 0, _MOUNT_ATTR_RDONLY)
    # Our working directory still points into the mount below the bind; step onto the writable one.
    os.chdir(writable)
    return ["readonly-fs", *guards]


def _capset(libc: ctypes.CDLL, mask: int) -> None:
    number = _SYS_CAPSET.get(os.uname().machine)
    if number is None:
        raise OSError(errno.ENOSYS, f"capset: unknown syscall number on {os.uname().machine}")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = data[0].inheritable = mask
    _check(libc.syscall(number, ctypes.byref(header), data), "capset")


def _drop_privileges(uid: int | None, keep_read_search: bool) -> None:
    """Leave the child with no capabilities (but DAC_READ_SEARCH if asked), as ``uid`` when given."""
    libc = _libc()
    keep = {_CAP_DAC_READ_SEARCH} if keep_read_search and uid is not None else set()
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last_cap + 1):
        if cap not in keep:
            libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    _check(libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0), "prctl(PR_SET_SECUREBITS)")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    mask = sum(1 << cap for cap in keep)
    _capset(libc, mask)
    for cap in keep:
        # Ambient capabilities survive exec of an ordinary binary: the interpreter may live under a
        # directory (such as /root) that the run's own uid could not otherwise enter.
        _check(libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap, 0, 0), "prctl(PR_CAP_AMBIENT)")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def _set_limits(limits: dict[str, int]) -> None:
    cpu = limits["cpu_s"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    # nproc_base: what the user already runs, when the count cannot be limited to this run alone.
    nproc = limits["processes"] + limits["nproc_base"]
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    for name, key in (
        ("RLIMIT_AS", "memory_bytes"),
        ("RLIMIT_FSIZE", "file_size_bytes"),
        ("RLIMIT_NOFILE", "open_files"),
        ("RLIMIT_CORE", "core_bytes"),
    ):
        value = limits[key]
        resource.setrlimit(getattr(resource, name), (value, value))


def _child(config: dict[str, Any], report_fd: int) -> None:
    """In the forked child: set limits, drop privileges, exec pytest. Never returns."""
    for sig in _SHIELDED:
        signal.signal(sig, signal.SIG_DFL)
    read_end, write_end = os.pipe()
    os.write(write_end, json.dumps(config["plugin"]).encode())
    os.close(write_end)
    os.set_inheritable(read_end, True)
    os.set_inheritable(report_fd, True)
    os.set_inheritable(config["started_fd"], True)
    env = dict(os.environ)
    env[config["config_fd_env"]] = str(read_end)
    _set_limits(config["limits"])
    if config["drop_privileges"]:
        _drop_privileges(config["uid"], config["keep_read_search"])
    # Set after the uid change, which clears it: pytest dies with its supervisor.
    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    argv = config["argv"]
    os.execve(argv[0], argv, env)


def _sweep_uid(uid: int) -> None:
    """Kill every process of ``uid``: kill(-1) as that uid reaches them all, whatever session they made."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            for _ in range(100):
                os.kill(-1, signal.SIGKILL)
        except OSError:
            pass  # ESRCH: nothing left of that uid
        os._exit(0)
    os.waitpid(pid, 0)


def main(argv: list[str]) -> int:
    """Run the supervisor; the exit status is pytest's (128 + signal when a signal ended it)."""
    with os.fdopen(int(argv[1]), "rb") as handle:
        config: dict[str, Any] = json.loads(handle.read())
    report_fd: int = config["report_fd"]
    started_fd: int = config["started_fd"]
    emit = _Emitter(report_fd, config["nonce"])
    for sig in _SHIELDED:
        signal.signal(sig, signal.SIG_IGN)

    guards: list[str] = []
    setup_errors: list[str] = []
    if config["readonly_root"]:
        try:
            guards += _make_root_readonly(config["workdir"])
        except OSError as exc:
            # Not fatal: the run goes on without this guard, and the result says it was missing.
            setup_errors.append(str(exc))
    if os.getpid() == 1:
        guards.append("pidns")
    emit("boot", guards=guards, errors=setup_errors)
    # "B" and the guards, on a pipe that no candidate code ever holds, tell the parent that this plan's
    # namespaces worked. The report file is no proof: a candidate could truncate it to fake a set-up
    # failure (and get re-run under a weaker plan) or to hide which guards were up.
    os.write(started_fd, b"B" + json.dumps({"guards": guards, "errors": setup_errors}).encode() + b"\n")

    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        try:
            _child(config, report_fd)
        except BaseException as exc:
            os.write(2, f"quantgate sandbox: could not start pytest: {exc!r}\n".encode())
        os._exit(127)
    os.close(started_fd)

    status = 0
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = wait_status
            break
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        emit("exit", returncode=-signum, signal=signal.Signals(signum).name)
        code = 128 + signum
    else:
        code = os.waitstatus_to_exitcode(status)
        emit("exit", returncode=code, signal=None)
    uid = config["uid"]
    if uid is not None and os.getpid() != 1:
        # As PID 1 our exit takes the whole namespace down; otherwise clear up what the candidate left.
        _sweep_uid(uid)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
