"""The llama.cpp buffer report: lines of this build and of older ones, and properties over any text."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_quantgate.memory_report import (
    HOST,
    Buffer,
    LlamaMemory,
    device_of,
    parse_buffer_line,
    parse_log,
    read_log,
    summary_line,
)

if TYPE_CHECKING:
    from pathlib import Path

# The tiny F16 preset's server at -lv 4 (this build: llama.cpp vendored by llama-cpp-python 0.3.36).
# (Runs of spaces in the breakdown table shortened to fit a line.)
THIS_BUILD = """\
0.00.001.805 I cmn  common_param: common_params_print_info: verbosity = 4 (adjust with the `-lv N` CLI arg)
0.00.002.054 I cmn  common_param: system_info: n_threads = 2 (n_threads_batch = 2) / 2 | CPU : SSE3 = 1 |
0.00.008.982 I common_memory_breakdown_print: | memory breakdown [MiB] | total free self model context compute |
0.00.009.003 I common_memory_breakdown_print: |   - Host  |      0 =     0 +       0 +       0       |
0.00.005.827 I print_info: file size   = 0.24 MiB (16.04 BPW)
0.00.006.156 I load_tensors:   CPU_Mapped model buffer size =     0.24 MiB
0.00.006.251 I llama_context:        CPU  output buffer size =     0.00 MiB
0.00.006.264 I llama_kv_cache:        CPU KV buffer size =     0.12 MiB
0.00.006.310 I llama_kv_cache: size = 0.12 MiB (256 cells,   2 layers,  1/1 seqs), K (f16): 0.06 MiB, V (f16): 0.06 MiB
0.00.006.938 I sched_reserve:        CPU compute buffer size =     0.47 MiB
0.00.023.379 I srv    load_model: prompt cache is enabled, size limit: 8192 MiB
0.00.236.239 I srv        update:  - cache state: 1 prompts, 0.003 MiB (limits: 8192.000 MiB, 256 tokens, 16025997 est)
0.00.258.501 I srv        update:  - cache state: 2 prompts, 0.007 MiB (limits: 8192.000 MiB, 256 tokens, 16077418 est)
0.00.258.501 I srv        update:    - prompt 0x558f9b50b2c0:       6 tokens, checkpoints:  0,     0.003 MiB
"""

# A CUDA build with partial offload, worded as llama.cpp builds of 2024 word it (no prefix, no timestamps).
OLDER_CUDA = """\
system_info: n_threads = 8 / 16 | AVX = 1 | AVX2 = 1 |
llm_load_tensors: ggml ctx size =    0.27 MiB
llm_load_tensors: offloading 20 repeating layers to GPU
llm_load_tensors:        CPU buffer size =   281.81 MiB
llm_load_tensors:      CUDA0 buffer size =  3577.56 MiB
llama_kv_cache_init:      CUDA0 KV buffer size =   512.00 MiB
llama_new_context_with_model: KV self size  =  512.00 MiB, K (f16):  256.00 MiB, V (f16):  256.00 MiB
llama_new_context_with_model:  CUDA_Host  output buffer size =     0.12 MiB
llama_new_context_with_model:      CUDA0 compute buffer size =   296.00 MiB
llama_new_context_with_model:  CUDA_Host compute buffer size =    16.01 MiB
llama_new_context_with_model: graph nodes  = 1030
"""


def test_this_build_s_lines_give_the_tiny_server_s_buffers() -> None:
    report = parse_log(THIS_BUILD.splitlines())
    assert report is not None
    assert report.by_device() == {HOST: {"model": 0.24, "output": 0.0, "kv": 0.12, "compute": 0.47}}
    assert report.total_mib == pytest.approx(0.83)
    assert report.figure() == (pytest.approx(0.83), HOST)
    # the prompt cache is RAM beyond the buffers: its last state, apart
    assert (report.prompt_cache_prompts, report.prompt_cache_mib, report.prompt_cache_limit_mib) == (2, 0.007, 8192)


def test_an_older_cuda_build_splits_host_and_device() -> None:
    report = parse_log(OLDER_CUDA.splitlines())
    assert report is not None
    assert report.by_device() == {
        HOST: {"model": 281.81, "output": 0.12, "compute": 16.01},
        "CUDA0": {"model": 3577.56, "kv": 512.0, "compute": 296.0},
    }
    # the ceiling reads the accelerator: the host part of a partly offloaded model is not VRAM
    assert report.figure() == (pytest.approx(4385.56), "CUDA0")
    assert report.prompt_cache_mib is None and report.prompt_cache_limit_mib is None


def test_two_gpus_and_pinning_narrow_the_figure() -> None:
    lines = [
        "load_tensors:        CUDA0 model buffer size =  1000.00 MiB",
        "load_tensors:        CUDA1 model buffer size =   900.00 MiB",
        "llama_kv_cache:      CUDA0 KV buffer size =   100.00 MiB",
        "llama_kv_cache:      CUDA1 KV buffer size =   100.00 MiB",
    ]
    report = parse_log(lines)
    assert report is not None
    assert report.figure() == (2100.0, "CUDA0+CUDA1")
    assert report.figure(["CUDA1"]) == (1000.0, "CUDA1")
    assert report.figure(["CUDA7"]) == (0.0, HOST)  # none of the named devices: the host's share (none here)


def test_the_last_server_start_in_a_log_counts() -> None:
    first = ["system_info: n_threads = 2", "load_tensors:   CPU_Mapped model buffer size =   10.00 MiB"]
    crashed = ["system_info: n_threads = 2", "error: cannot load model"]  # a start that reported nothing
    second = ["system_info: n_threads = 2", "load_tensors:   CPU_Mapped model buffer size =   20.00 MiB"]
    report = parse_log([*first, *second])
    assert report is not None and report.total_mib == 20.0
    report = parse_log([*first, *crashed])
    assert report is not None and report.total_mib == 10.0


def test_a_draft_model_s_buffers_add_to_the_main_model_s() -> None:
    # Speculative decoding loads a second model in the same process: its buffers are the server's too.
    lines = [
        "load_tensors:   CPU_Mapped model buffer size =   100.00 MiB",
        "llama_kv_cache:        CPU KV buffer size =    10.00 MiB",
        "load_tensors:   CPU_Mapped model buffer size =    20.00 MiB",
        "llama_kv_cache:        CPU KV buffer size =     2.00 MiB",
    ]
    report = parse_log(lines)
    assert report is not None and report.by_device() == {HOST: {"model": 120.0, "kv": 12.0}}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("llama_kv_cache:        CPU KV buffer size =     0.12 MiB", Buffer("CPU", "kv", 0.12)),
        ("load_tensors:        ROCm0 model buffer size =  2048.00 MiB", Buffer("ROCm0", "model", 2048.0)),
        ("load_tensors: Metal_Mapped model buffer size =  4000.00 MiB", Buffer("Metal_Mapped", "model", 4000.0)),
        ("llama_memory_recurrent:        CPU RS buffer size =    12.50 MiB", Buffer("CPU", "rs", 12.5)),
        ("llama_adapter_lora_init_impl:  CUDA0 LoRA buffer size =  1.00 GiB", Buffer("CUDA0", "lora", 1024.0)),
        ("sched_reserve:    Vulkan0 compute buffer size =   512 KiB", Buffer("Vulkan0", "compute", 0.5)),
        # not buffer reports: the "does not match" warning, the debug line, the breakdown table, free text
        ("sched_reserve:  CPU compute buffer size of   0.4700 MiB, does not match expectation of 0.5 MiB", None),
        ("sched_reserve:  CPU compute buffer size is   0.4700 MiB, matches expectation of 0.47 MiB", None),
        ("common_memory_breakdown_print: |   - CUDA0 (RTX 4090) | 24080 = 1234 + (5678 = 4567 + 456) + 100 |", None),
        ("the buffer size = large", None),
        ("", None),
    ],
)
def test_buffer_lines(line: str, expected: Buffer | None) -> None:
    assert parse_buffer_line(line) == expected


@pytest.mark.parametrize(
    ("buffer_type", "device"),
    [("CPU", HOST), ("CPU_Mapped", HOST), ("CPU_REPACK", HOST), ("CUDA_Host", HOST), ("ROCm_Host", HOST),
     ("CUDA0", "CUDA0"), ("ROCm1", "ROCm1"), ("Metal", "Metal"), ("Metal_Mapped", "Metal"), ("Vulkan0", "Vulkan0")],
)  # fmt: skip
def test_devices_of_buffer_types(buffer_type: str, device: str) -> None:
    assert device_of(buffer_type) == device


def test_a_log_without_buffer_lines_reports_nothing(tmp_path: Path) -> None:
    assert parse_log(["srv  llama_server: model loaded", "listening on http://127.0.0.1:8080"]) is None
    assert read_log(tmp_path / "missing.log") is None
    (tmp_path / "bin.log").write_bytes(b"\xff\xfe\x00garbage\nload_tensors:  CPU_Mapped model buffer size = 1.5 MiB\n")
    found = read_log(tmp_path / "bin.log")
    assert found is not None and found.total_mib == 1.5


def test_a_log_that_grew_is_read_again(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("load_tensors:   CPU_Mapped model buffer size =   10.00 MiB\n")
    first = read_log(log)
    assert first is not None and first.total_mib == 10.0
    assert read_log(log) is first  # unchanged: not read again
    with log.open("a") as fh:
        fh.write("srv  update:  - cache state: 3 prompts, 1.500 MiB (limits: 8192.000 MiB, 256 tokens, 1 est)\n")
    again = read_log(log)
    assert again is not None and again.prompt_cache_mib == 1.5


def test_summary_line_names_each_device() -> None:
    report = parse_log(OLDER_CUDA.splitlines())
    assert report is not None
    assert summary_line(report).startswith("CPU 297.94 MiB (model 281.81, output 0.12, compute 16.01); CUDA0 4385.56")


# -- properties ------------------------------------------------------------------------------------------

_BUFFER_TYPES = st.sampled_from(["CPU", "CPU_Mapped", "CPU_REPACK", "CUDA0", "CUDA1", "CUDA_Host", "ROCm0", "Metal"])
_LABELS = st.sampled_from([("model", "model"), ("KV", "kv"), ("compute", "compute"), ("output", "output"),
                           ("RS", "rs"), ("LoRA", "lora")])  # fmt: skip
_FUNCS = st.sampled_from(["load_tensors", "llama_kv_cache", "llama_context", "sched_reserve", "llm_load_tensors"])
_SIZES = st.integers(min_value=0, max_value=10**7).map(lambda n: n / 100)
_NOISE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120).filter(
    lambda s: "buffer size" not in s.lower() and "system" not in s.lower() and "cache" not in s.lower()
)


@st.composite
def buffer_lines(draw: st.DrawFn) -> tuple[str, Buffer]:
    buft, (label, kind), func, size = draw(_BUFFER_TYPES), draw(_LABELS), draw(_FUNCS), draw(_SIZES)
    pad = " " * draw(st.integers(1, 12))
    prefix = draw(st.sampled_from(["", "0.00.006.156 I ", "[1712] "]))
    return f"{prefix}{func}:{pad}{buft} {label} buffer size = {size:8.2f} MiB", Buffer(buft, kind, size)


@given(st.lists(st.text(max_size=200), max_size=30))
def test_any_text_parses_without_raising(lines: list[str]) -> None:
    report = parse_log(lines)
    assert report is None or all(math.isfinite(b.mib) and b.mib >= 0 for b in report.buffers)


@given(st.lists(st.one_of(buffer_lines(), _NOISE), max_size=40))
def test_unknown_lines_change_nothing(mixed: list[tuple[str, Buffer] | str]) -> None:
    lines = [m if isinstance(m, str) else m[0] for m in mixed]
    expected = tuple(m[1] for m in mixed if not isinstance(m, str))
    report = parse_log(lines)
    if not expected:
        assert report is None
    else:
        assert report is not None and report.buffers == expected
        assert report.total_mib == pytest.approx(math.fsum(b.mib for b in expected))
        totals = report.device_totals()
        assert math.fsum(totals.values()) == pytest.approx(report.total_mib)
        figure, scope = report.figure()
        assert 0 <= figure <= report.total_mib + 1e-9
        assert all(device in totals for device in scope.split("+")) or scope == HOST


@given(st.lists(buffer_lines(), min_size=1, max_size=10), st.lists(buffer_lines(), min_size=1, max_size=10))
def test_a_restart_replaces_the_earlier_report(
    before: list[tuple[str, Buffer]], after: list[tuple[str, Buffer]]
) -> None:
    lines = [
        "system_info: n_threads = 2",
        *(b[0] for b in before),
        "system_info: n_threads = 2",
        *(a[0] for a in after),
    ]
    report = parse_log(lines)
    assert report == LlamaMemory(buffers=tuple(a[1] for a in after))
