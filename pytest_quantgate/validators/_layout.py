"""The directory a sandboxed test run happens in, and the pytest command it runs there (internal).

``root/`` holds ``work/`` (the candidate's module; the only place it may write; its ``HOME`` and
``TMPDIR``), ``tests/`` (the hidden test file, read-only) and ``harness/`` (the reporter plugin and an
empty ``pytest.ini``, so that no configuration of the host's applies). The report and output files of
each attempt go into ``root/`` itself, which the candidate may search but not list or write.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_quantgate.validators import _process

if TYPE_CHECKING:
    from collections.abc import Mapping

TEST_FILE = "test_hidden.py"
REPORTER_MODULE = "_quantgate_sandbox_reporter"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one run's files are; ``test_hash`` is the SHA-256 of the hidden tests as written."""

    root: Path
    workdir: Path
    test_file: Path
    harness: Path
    ini: Path
    test_hash: str

    def pytest_argv(self) -> list[str]:
        """pytest over the hidden test file only, with the reporter, and none of the host's configuration."""
        return [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            REPORTER_MODULE,
            "-c",
            str(self.ini),
            "--rootdir",
            str(self.test_file.parent),
            "-q",
            "--tb=short",
            "--color=no",
            "--no-header",
            str(self.test_file),
        ]

    def child_env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        """The scrubbed environment, with the reporter and the candidate importable, no plugin autoloading."""
        return _process.scrubbed_env(
            home=self.workdir,
            python_path=(self.harness, self.workdir),
            extra={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **(extra or {})},
        )

    def read_paths(self) -> list[Path]:
        """What the pytest child must be able to read: the interpreter, pytest, and this directory."""
        import pytest

        return [*_process.interpreter_paths(), Path(pytest.__file__).parent, self.root]


def prepare(root: Path, code: str, tests: str, module: str, uid: int | None) -> Layout:
    """Write the candidate as ``<module>.py``, the hidden tests and the harness into the empty ``root``."""
    workdir = root / "work"
    testdir = root / "tests"
    harness = root / "harness"
    for directory in (workdir, testdir, harness):
        directory.mkdir()
    # Model output may hold lone surrogates; they cannot be valid source anyway, so replace them.
    (workdir / f"{module}.py").write_bytes(code.encode("utf-8", "replace"))
    test_file = testdir / TEST_FILE
    test_file.write_text(tests, encoding="utf-8")
    reporter = Path(__file__).with_name("_reporter.py").read_text(encoding="utf-8")
    (harness / f"{REPORTER_MODULE}.py").write_text(reporter, encoding="utf-8")
    ini = harness / "pytest.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    # The candidate may read everything here but write only to work/.
    root.chmod(0o711)
    testdir.chmod(0o755)
    harness.chmod(0o755)
    test_file.chmod(0o444)
    if uid is not None:
        for path in (workdir, workdir / f"{module}.py"):
            os.chown(path, uid, uid)
    workdir.chmod(0o700)
    return Layout(root, workdir, test_file, harness, ini, hashlib.sha256(tests.encode()).hexdigest())
