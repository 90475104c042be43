"""Build and find a CPU ``llama-server`` (and ``llama-quantize``) from PyPI alone.

No PyPI package ships a prebuilt server, but the ``llama-cpp-python`` sdist vendors the whole llama.cpp
tree. We download that sdist with pip, build only the two targets with cmake, and cache the binaries per
user, keyed by the pinned version, so the ~6 minute build happens once per machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from filelock import FileLock

from pytest_quantgate.errors import InstallError

if TYPE_CHECKING:
    from collections.abc import Callable

LLAMA_CPP_PYTHON_PIN = "0.3.36"
# Bump the flavour whenever CMAKE_FLAGS change, so an old cache is never mistaken for the new build.
BUILD_FLAVOUR = "cpu"
TARGETS = ("llama-server", "llama-quantize")

# GGML_NATIVE=OFF: a native build is tied to the CPU it was built on, and the cache may be shared or
# copied between machines; ggml then enables the common x86-64 baseline (SSE4.2/AVX/AVX2/FMA/F16C).
# LLAMA_USE_PREBUILT_UI=OFF: otherwise configure tries to download web-UI assets.
# LLAMA_OPENSSL=OFF: the server only ever binds to loopback here, and it drops a system dependency.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DGGML_OPENMP=ON",
)

ENV_SERVER = "QUANTGATE_LLAMA_SERVER"
ENV_QUANTIZE = "QUANTGATE_LLAMA_QUANTIZE"
ENV_SDIST = "QUANTGATE_LLAMA_CPP_SDIST"
ENV_CACHE = "QUANTGATE_CACHE_DIR"

_PROGRESS = re.compile(r"^\[\s*(\d+)%\]")


@dataclass(frozen=True, slots=True)
class Binaries:
    """The two programs a tiny-model run needs, and how they were made."""

    server: Path
    quantize: Path
    source: str  # "cache", "env", "PATH" or "explicit": where discovery found them


def cache_root() -> Path:
    """Per-user cache directory (``$QUANTGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pytest-quantgate``)."""
    if explicit := os.environ.get(ENV_CACHE):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-quantgate"


def build_home(root: Path | None = None) -> Path:
    """Where this pin's sources, build tree and binaries live."""
    return (root or cache_root()) / "llama.cpp" / f"{LLAMA_CPP_PYTHON_PIN}-{BUILD_FLAVOUR}"


def cached_binaries(root: Path | None = None) -> Binaries | None:
    """The cached build if it is complete, else None."""
    home = build_home(root)
    server, quantize = home / "bin" / "llama-server", home / "bin" / "llama-quantize"
    if (home / "BUILD-INFO.json").is_file() and _executable(server) and _executable(quantize):
        return Binaries(server=server, quantize=quantize, source="cache")
    return None


def find_binary(name: str, explicit: str | Path | None = None, *, root: Path | None = None) -> Path:
    """Find ``llama-server`` or ``llama-quantize``: explicit path → env var → PATH → the cache.

    Raises InstallError naming every place looked at and the command that fills the cache.
    """
    if name not in TARGETS:
        raise ValueError(f"unknown binary {name!r}; expected one of {TARGETS}")
    env_name = ENV_SERVER if name == "llama-server" else ENV_QUANTIZE
    looked: list[str] = []
    if explicit is not None:
        path = Path(explicit).expanduser()
        if _executable(path):
            return path
        raise InstallError(f"{name} binary {str(path)!r} (from the preset) is not an executable file")
    if env := os.environ.get(env_name):
        path = Path(env).expanduser()
        if _executable(path):
            return path
        raise InstallError(f"{env_name}={env!r} is not an executable file; unset it or fix the path")
    looked.append(f"${env_name} (unset)")
    if on_path := shutil.which(name):
        return Path(on_path)
    looked.append("PATH")
    cached = cached_binaries(root)
    if cached is not None:
        return cached.server if name == "llama-server" else cached.quantize
    looked.append(str(build_home(root) / "bin"))
    raise InstallError(
        f"no {name} found (looked in: {', '.join(looked)}). "
        "Run `quantgate install-server` to build a CPU one from PyPI (about 6 minutes on 2 cores), "
        f"or set {env_name} to your own build."
    )


def binary_version(binary: Path) -> str:
    """The first line llama.cpp prints for ``--version`` (it writes to stderr), or '' if it cannot say."""
    try:
        proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (proc.stdout + proc.stderr).strip().splitlines()
    lines = [line for line in text if line.startswith("version:")]
    return (lines or text or [""])[0]


def install_server(
    *,
    root: Path | None = None,
    sdist: Path | None = None,
    jobs: int | None = None,
    progress: Callable[[str], None] = print,
) -> Binaries:
    """Build (or reuse) the cached CPU llama-server and llama-quantize.

    Safe to call from two processes at once: the second waits on a file lock and then finds the cache.
    """
    home = build_home(root)
    home.mkdir(parents=True, exist_ok=True)
    if (done := cached_binaries(root)) is not None:
        return done
    lock = FileLock(str(home / ".lock"))
    if not _try_acquire(lock):
        progress(f"another process is building llama-server in {home}; waiting for it")
        lock.acquire()
    try:
        if (done := cached_binaries(root)) is not None:
            return done
        _require_toolchain()
        started = time.monotonic()
        source = home / "src"
        if not (source / ".extracted").is_file():
            tarball = sdist or _sdist_from_env() or _download_sdist(home / "sdist", progress)
            progress(f"extracting vendor/llama.cpp from {tarball.name}")
            _extract_vendor(tarball, source)
        _cmake(source, home / "build", jobs or os.cpu_count() or 2, progress)
        bindir = home / "bin"
        bindir.mkdir(exist_ok=True)
        for target in TARGETS:
            built = home / "build" / "bin" / target
            if not _executable(built):
                raise InstallError(f"cmake finished but {built} is missing; see {home / 'build.log'}")
            shutil.copy2(built, bindir / target)
        seconds = time.monotonic() - started
        info = {
            "llama_cpp_python": LLAMA_CPP_PYTHON_PIN,
            "flavour": BUILD_FLAVOUR,
            "cmake_flags": list(CMAKE_FLAGS),
            "build_seconds": round(seconds, 1),
            "version": binary_version(bindir / "llama-server"),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (home / "BUILD-INFO.json").write_text(json.dumps(info, indent=2) + "\n")
        progress(f"built llama-server and llama-quantize in {seconds:.0f} s")
    finally:
        lock.release()
    done = cached_binaries(root)
    assert done is not None  # written just above
    return done


def _try_acquire(lock: FileLock) -> bool:
    try:
        lock.acquire(timeout=0)
    except TimeoutError:
        return False
    return True


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _require_toolchain() -> None:
    missing = [tool for tool in ("cmake",) if shutil.which(tool) is None]
    if not any(shutil.which(cxx) for cxx in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler (g++ or clang++)")
    if missing:
        raise InstallError(
            f"building llama-server needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'}"
            " not on PATH. Install them (Debian/Ubuntu: `apt-get install cmake g++`; cmake also comes"
            " from `pip install cmake`), or point QUANTGATE_LLAMA_SERVER at an existing llama-server."
        )


def _sdist_from_env() -> Path | None:
    value = os.environ.get(ENV_SDIST)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise InstallError(f"{ENV_SDIST}={value!r} is not a file; give the path of a llama-cpp-python sdist")
    return path


def _download_sdist(dest: Path, progress: Callable[[str], None]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON_PIN}.tar.gz"))
    if found:
        return found[0]
    progress(f"downloading the llama-cpp-python=={LLAMA_CPP_PYTHON_PIN} sdist with pip")
    argv = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        f"llama-cpp-python=={LLAMA_CPP_PYTHON_PIN}", "-d", str(dest),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if proc.returncode != 0 or not found:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise InstallError(
            f"could not download llama-cpp-python=={LLAMA_CPP_PYTHON_PIN} with pip (exit {proc.returncode})."
            f" Without network access, fetch the sdist elsewhere and set {ENV_SDIST}=/path/to/"
            f"llama_cpp_python-{LLAMA_CPP_PYTHON_PIN}.tar.gz.\n{tail}"
        )
    return found[0]


def _extract_vendor(tarball: Path, dest: Path) -> None:
    """Extract only ``<top>/vendor/llama.cpp/`` into *dest* (the sdist also carries a .git tree)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        with tarfile.open(tarball) as archive:
            members = []
            for member in archive.getmembers():
                parts = member.name.split("/", 3)
                # The tree's .git is a gitlink into the sdist's own .git: useless here, and cmake's
                # build-info step prints "not a git repository" for it.
                if len(parts) == 4 and parts[1:3] == ["vendor", "llama.cpp"] and parts[3] != ".git":
                    member.name = parts[3]
                    members.append(member)
            if not members:
                raise InstallError(f"{tarball} has no vendor/llama.cpp/ tree; is it a llama-cpp-python sdist?")
            archive.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise InstallError(f"cannot extract {tarball}: {exc}; delete it and run again") from exc
    (dest / ".extracted").write_text(tarball.name + "\n")


def _cmake(source: Path, build: Path, jobs: int, progress: Callable[[str], None]) -> None:
    log_path = build.parent / "build.log"
    with log_path.open("w") as log:
        configure = ["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS]
        _run_logged(configure, log, log_path, "configure")
        progress(f"building {' and '.join(TARGETS)} with {jobs} jobs (log: {log_path})")
        argv = ["cmake", "--build", str(build), "--target", *TARGETS, "-j", str(jobs)]
        _run_logged(argv, log, log_path, "build", progress)


def _run_logged(
    argv: list[str],
    log: TextIO,
    log_path: Path,
    step: str,
    progress: Callable[[str], None] | None = None,
) -> None:
    started = time.monotonic()
    last = -10
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        if progress and (m := _PROGRESS.match(line)) and int(m.group(1)) >= last + 10:
            last = int(m.group(1))
            progress(f"  {last:3d}%  ({time.monotonic() - started:.0f} s)")
    if proc.wait() != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise InstallError(f"cmake {step} failed (exit {proc.returncode}); full log: {log_path}\n{tail}")


def install_perplexity(*, root: Path | None = None, jobs: int | None = None) -> Path:
    """``llama-perplexity`` from the cached build tree (an incremental build of that one target, seconds once
    the server is built), copied beside the server; used to check the KLD suite against llama.cpp itself.

    Needs the cached build (``quantgate install-server``); :class:`InstallError` says so, or shows the build log.
    """
    home = build_home(root)
    binary = home / "bin" / "llama-perplexity"
    if _executable(binary):
        return binary
    if cached_binaries(root) is None or not (home / "build" / "CMakeCache.txt").is_file():
        raise InstallError(f"no cached llama.cpp build tree in {home}; run `quantgate install-server` first")
    with FileLock(str(home / ".lock")):
        if _executable(binary):
            return binary
        log_path = home / "build-perplexity.log"
        with log_path.open("w") as log:
            argv = ["cmake", "--build", str(home / "build"), "--target", "llama-perplexity", "-j", str(jobs or 2)]
            _run_logged(argv, log, log_path, "build of llama-perplexity")
        built = home / "build" / "bin" / "llama-perplexity"
        if not _executable(built):
            raise InstallError(f"cmake finished but {built} is missing; see {log_path}")
        shutil.copy2(built, binary)
    return binary
