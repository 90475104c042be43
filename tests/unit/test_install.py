"""Tests of pytest_quantgate.install: finding llama-server, the toolchain check, the sdist. No real build."""

from __future__ import annotations

import io
import json
import re
import tarfile
from typing import TYPE_CHECKING

import pytest

from pytest_quantgate import install
from pytest_quantgate.errors import InstallError
from pytest_quantgate.install import build_home, cache_root, cached_binaries, find_binary, install_server

if TYPE_CHECKING:
    from pathlib import Path


def executable(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)
    return path


def fill_cache(root: Path) -> tuple[Path, Path]:
    home = build_home(root)
    server, quantize = executable(home / "bin" / "llama-server"), executable(home / "bin" / "llama-quantize")
    (home / "BUILD-INFO.json").write_text(json.dumps({"version": "test"}))
    return server, quantize


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No llama-server anywhere: empty PATH directory, no env vars, an empty cache under tmp_path."""
    (tmp_path / "empty-path").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setenv("QUANTGATE_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("QUANTGATE_LLAMA_SERVER", "QUANTGATE_LLAMA_QUANTIZE", "QUANTGATE_LLAMA_CPP_SDIST"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


# -- find_binary ------------------------------------------------------------------------------------------


def test_the_discovery_order_is_explicit_env_path_cache(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached, _ = fill_cache(env / "cache")
    assert find_binary("llama-server") == cached
    on_path = executable(env / "path-bin" / "llama-server")
    monkeypatch.setenv("PATH", str(env / "path-bin"))
    assert find_binary("llama-server") == on_path
    from_env = executable(env / "env-bin" / "llama-server")
    monkeypatch.setenv("QUANTGATE_LLAMA_SERVER", str(from_env))
    assert find_binary("llama-server") == from_env
    explicit = executable(env / "preset-bin" / "llama-server")
    assert find_binary("llama-server", explicit) == explicit
    assert find_binary("llama-server", str(explicit)) == explicit


def test_llama_quantize_has_its_own_variable_and_cache_entry(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, cached = fill_cache(env / "cache")
    monkeypatch.setenv("QUANTGATE_LLAMA_SERVER", str(executable(env / "x" / "llama-server")))
    assert find_binary("llama-quantize") == cached
    own = executable(env / "q" / "llama-quantize")
    monkeypatch.setenv("QUANTGATE_LLAMA_QUANTIZE", str(own))
    assert find_binary("llama-quantize") == own


def test_an_explicit_path_that_is_not_executable_is_an_error(env: Path) -> None:
    plain = env / "llama-server"
    plain.write_text("not executable")
    with pytest.raises(InstallError, match=r"llama-server binary '.*llama-server' \(from the preset\) is not an"):
        find_binary("llama-server", plain)


def test_an_env_path_that_is_not_executable_is_an_error_not_a_fallback(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_cache(env / "cache")
    monkeypatch.setenv("QUANTGATE_LLAMA_SERVER", str(env / "missing"))
    with pytest.raises(InstallError, match=r"QUANTGATE_LLAMA_SERVER='.*missing' is not an executable file; unset it"):
        find_binary("llama-server")


def test_an_incomplete_cache_is_not_used(env: Path) -> None:
    fill_cache(env / "cache")
    (build_home(env / "cache") / "BUILD-INFO.json").unlink()  # an interrupted build
    assert cached_binaries(env / "cache") is None
    with pytest.raises(InstallError):
        find_binary("llama-server")


def test_nothing_found_lists_where_it_looked_and_how_to_fix_it(env: Path) -> None:
    with pytest.raises(InstallError) as info:
        find_binary("llama-server")
    message = str(info.value)
    bindir = build_home(env / "cache") / "bin"
    assert f"no llama-server found (looked in: $QUANTGATE_LLAMA_SERVER (unset), PATH, {bindir})" in message
    assert "Run `quantgate install-server`" in message
    assert "set QUANTGATE_LLAMA_SERVER to your own build" in message


def test_an_unknown_binary_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown binary 'llama-cli'"):
        find_binary("llama-cli")


def test_cache_root_honours_the_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTGATE_CACHE_DIR", str(tmp_path / "qc"))
    assert cache_root() == tmp_path / "qc"
    monkeypatch.delenv("QUANTGATE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "pytest-quantgate"
    assert build_home(tmp_path) == tmp_path / "llama.cpp" / f"{install.LLAMA_CPP_PYTHON_PIN}-{install.BUILD_FLAVOUR}"


# -- the toolchain and the sdist --------------------------------------------------------------------------


def test_an_empty_path_names_cmake_and_a_compiler(env: Path) -> None:
    with pytest.raises(InstallError) as info:
        install._require_toolchain()
    message = str(info.value)
    assert "building llama-server needs cmake and a C++ compiler (g++ or clang++), which are not on PATH" in message
    assert "apt-get install cmake g++" in message
    assert "QUANTGATE_LLAMA_SERVER" in message


def test_with_cmake_only_the_compiler_is_missing(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executable(env / "tools" / "cmake")
    monkeypatch.setenv("PATH", str(env / "tools"))
    with pytest.raises(InstallError, match=r"needs a C\+\+ compiler \(g\+\+ or clang\+\+\), which is not on PATH"):
        install._require_toolchain()
    executable(env / "tools" / "clang++")
    install._require_toolchain()  # satisfied


def test_a_missing_sdist_in_the_environment_is_an_error(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTGATE_LLAMA_CPP_SDIST", str(env / "nope.tar.gz"))
    with pytest.raises(InstallError, match=r"QUANTGATE_LLAMA_CPP_SDIST='.*nope\.tar\.gz' is not a file"):
        install._sdist_from_env()
    # and install_server stops there, before any download or build (the toolchain is faked)
    for tool in ("cmake", "g++"):
        executable(env / "tools" / tool, "#!/bin/sh\necho must not run >&2\nexit 1\n")
    monkeypatch.setenv("PATH", str(env / "tools"))
    with pytest.raises(InstallError, match="QUANTGATE_LLAMA_CPP_SDIST="):
        install_server(root=env / "cache", progress=lambda _: None)


def test_an_unset_sdist_variable_means_download(env: Path) -> None:
    assert install._sdist_from_env() is None


def test_install_server_reuses_a_complete_cache_without_a_toolchain(env: Path) -> None:
    server, quantize = fill_cache(env / "cache")
    done = install_server(root=env / "cache", progress=lambda _: pytest.fail("nothing to report"))
    assert (done.server, done.quantize, done.source) == (server, quantize, "cache")


# -- extracting vendor/llama.cpp --------------------------------------------------------------------------


def tarball(path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def test_only_the_vendored_llama_cpp_tree_is_extracted(tmp_path: Path) -> None:
    sdist = tarball(
        tmp_path / "llama_cpp_python-0.3.36.tar.gz",
        {
            "llama_cpp_python-0.3.36/setup.py": b"setup()",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/CMakeLists.txt": b"project(llama.cpp)",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/src/llama.cpp": b"int main;",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/.git/HEAD": b"ref",
            "llama_cpp_python-0.3.36/vendor/other/x.c": b"no",
        },
        dirs=(
            "llama_cpp_python-0.3.36",
            "llama_cpp_python-0.3.36/vendor/llama.cpp",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/src",
        ),
    )
    dest = tmp_path / "src"
    (dest / "stale").mkdir(parents=True)  # a previous, interrupted extraction is replaced
    install._extract_vendor(sdist, dest)
    found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert found == [".extracted", ".git/HEAD", "CMakeLists.txt", "src/llama.cpp"]
    assert (dest / "CMakeLists.txt").read_bytes() == b"project(llama.cpp)"
    assert (dest / ".extracted").read_text() == "llama_cpp_python-0.3.36.tar.gz\n"


def test_a_tarball_without_vendor_llama_cpp_is_rejected(tmp_path: Path) -> None:
    sdist = tarball(tmp_path / "other-1.0.tar.gz", {"other-1.0/setup.py": b"", "other-1.0/vendor/zlib/z.c": b""})
    with pytest.raises(InstallError, match=r"other-1\.0\.tar\.gz has no vendor/llama\.cpp/ tree; is it a llama-cpp"):
        install._extract_vendor(sdist, tmp_path / "src")
    assert not (tmp_path / "src" / ".extracted").exists()


def test_a_corrupt_or_hostile_tarball_is_an_install_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(b"\x1f\x8b this is not gzip")
    with pytest.raises(InstallError, match=r"(?s)cannot extract .*corrupt\.tar\.gz: .*; delete it and run again"):
        install._extract_vendor(corrupt, tmp_path / "src")
    hostile = tarball(tmp_path / "h.tar.gz", {"p-1/vendor/llama.cpp/../../../../escape.txt": b"x"})
    with pytest.raises(InstallError, match=re.escape("cannot extract")):
        install._extract_vendor(hostile, tmp_path / "src2")
    assert not (tmp_path / "escape.txt").exists()
