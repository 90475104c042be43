"""Memory on the real CPU llama-server: what it says it allocated, and the RSS beside it."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

import pytest

from pytest_quantgate.memory import RssProbe
from pytest_quantgate.memory_report import HOST, LlamaMemory, read_log
from pytest_quantgate.presets import resolve
from pytest_quantgate.server import VERBOSITY_ENV, ServerProcess, spec_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("preset_id", ["tiny-f16", "tiny-q4_0"])
def test_the_server_s_buffer_report_is_read_from_its_log(
    preset_id: str, llama_server_bin: Path, tmp_path: Path
) -> None:
    preset = resolve(preset_id)
    spec = spec_for(preset)
    assert spec.env[VERBOSITY_ENV] == "4"
    with ServerProcess.start(spec, tmp_path / "server.log") as server:
        report = _complete_report(server.log_path)
        rss = RssProbe(server.pid).read_mb()
    assert report is not None, server.log_tail()
    per_device = report.by_device()
    assert list(per_device) == [HOST]  # a CPU build: everything on the host
    kinds = per_device[HOST]
    assert {"model", "kv", "compute"} <= set(kinds)
    # the weights are the GGUF's tensor data: about the file's size (which also holds metadata); a CPU
    # build repacks Q4_0 weights into a second buffer (CPU_REPACK) beside the mapped file
    assert preset.model is not None
    file_mib = preset.model.stat().st_size / (1024 * 1024)
    assert 0.5 * file_mib <= kinds["model"] <= 2 * file_mib
    assert kinds["kv"] > 0 and kinds["compute"] > 0
    figure, scope = report.figure()
    assert scope == HOST and figure == pytest.approx(report.total_mib)
    # the process holds far more than its buffers (the binary, libraries, threads): RSS is another figure
    assert rss is not None and rss > figure


def _complete_report(log: Path) -> LlamaMemory | None:
    """The buffer report once the log holds its model, KV and compute lines: llama.cpp writes its log from a
    thread of its own, so on a busy machine the lines may land after the server already answers."""
    deadline = time.monotonic() + 60
    while True:
        report = read_log(log)
        if report is not None and {"model", "kv", "compute"} <= set(report.by_device().get(HOST, {})):
            return report
        if time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def test_a_preset_that_chooses_its_verbosity_keeps_it_and_has_no_report(llama_server_bin: Path, tmp_path: Path) -> None:
    preset = resolve("tiny-f16")
    quiet = dataclasses.replace(preset, extra_args=(*preset.extra_args, "-lv", "3"))
    spec = spec_for(quiet)
    assert VERBOSITY_ENV not in spec.env
    with ServerProcess.start(spec, tmp_path / "server.log") as server:
        assert server.alive()
        assert read_log(server.log_path) is None
