"""The reference cache: round trip, bad files rebuilt never trusted, atomic under concurrent writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_quantgate.errors import KldError
from pytest_quantgate.kld import cache
from pytest_quantgate.kld.divergence import TopK
from pytest_quantgate.kld.fetch import Tokenized
from pytest_quantgate.kld.guards import caveats, check_tokens

MODELS = Path(__file__).parents[3] / "pytest_quantgate" / "models"


def _entry(seed: int = 0) -> cache.Entry:
    rng = np.random.default_rng(seed)
    tokens = ((1, 5, 6, 7), (1, 9, 9))
    corpus = Tokenized(("a", "b"), ("code", "chat"), tokens, ((0, 1, 2), (0, 1)))
    lps = np.sort(np.log(rng.dirichlet(np.ones(4), 5)), axis=1)[:, ::-1].astype(np.float32).astype(np.float64)
    return cache.Entry(corpus, TopK(rng.integers(0, 50, (5, 4)), lps, False), "tiny-f16")


KEY = cache.CacheKey("ab" * 32, "cd" * 32, 4, "ef" * 32)


def test_round_trip(tmp_path: Path) -> None:
    path = KEY.path(tmp_path)
    assert cache.load(path, KEY) == (None, "not cached yet")
    cache.save(path, KEY, _entry())
    got, why = cache.load(path, KEY)
    assert why == "" and got is not None
    assert got.corpus.tokens == _entry().corpus.tokens and got.corpus.positions == _entry().corpus.positions
    np.testing.assert_array_equal(got.topk.ids, _entry().topk.ids)
    np.testing.assert_array_equal(got.topk.logprobs, _entry().topk.logprobs)
    other = cache.CacheKey("ab" * 32, "cd" * 32, 5, "ef" * 32)
    assert other.path(tmp_path) != path


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda b: b[: len(b) // 2], "checksum mismatch"),
        (lambda b: b[:3], "truncated"),
        (lambda b: b[:5] + bytes([9]) + b[6:], "format version 9"),
        (lambda b: b[:-40] + bytes(8) + b[-32:], "checksum mismatch"),
        (lambda b: b"", "truncated"),
    ],
)
def test_damaged_files_are_misses_with_the_reason(tmp_path: Path, damage, why: str) -> None:
    path = KEY.path(tmp_path)
    cache.save(path, KEY, _entry())
    path.write_bytes(damage(path.read_bytes()))
    entry, reason = cache.load(path, KEY)
    assert entry is None and why in reason


def test_a_file_written_for_another_key_is_not_used(tmp_path: Path) -> None:
    path = KEY.path(tmp_path)
    cache.save(path, cache.CacheKey("00" * 32, "cd" * 32, 4, "ef" * 32), _entry())
    assert cache.load(path, KEY) == (None, "written for another key")


_WRITER = """
import sys
from pathlib import Path
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from test_cache import KEY, _entry
from pytest_quantgate.kld import cache
for _ in range(30):
    cache.save(KEY.path(Path(sys.argv[1])), KEY, _entry(int(sys.argv[2])))
"""


def test_concurrent_writers_never_leave_a_torn_file(tmp_path: Path) -> None:
    here = str(Path(__file__).parent)
    root = str(Path(__file__).parents[3])
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(seed), here, root]) for seed in (1, 2)]
    while any(p.poll() is None for p in procs):
        entry, why = cache.load(KEY.path(tmp_path), KEY)
        assert entry is not None or why == "not cached yet", why
    assert [p.wait() for p in procs] == [0, 0]
    assert cache.load(KEY.path(tmp_path), KEY)[0] is not None
    assert not list(tmp_path.glob("*.tmp"))


def test_unwritable_cache_is_an_error_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(KldError, match="cannot write the reference cache"):
        cache.save(blocker / "sub" / "x.qgkld", KEY, _entry())


def test_file_hash_is_remembered_and_follows_changes(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"abc")
    first = cache.file_sha256(f, tmp_path)
    assert first == cache.file_sha256(f, tmp_path)
    f.write_bytes(b"abcd")
    assert cache.file_sha256(f, tmp_path) != first


def test_tokenizer_mismatch_names_the_document_and_position() -> None:
    a = Tokenized(("d1", "d2"), ("x", "x"), ((1, 2, 3), (1, 4, 5, 6)), ((0, 1), (0, 1, 2)))
    b = Tokenized(("d1", "d2"), ("x", "x"), ((1, 2, 3), (1, 4, 7, 6)), ((0, 1), (0, 1, 2)))
    check_tokens(a, a, "ref", "cand")
    with pytest.raises(KldError, match=r"document 'd2' .* first different at token 2 \(\[5, 6\] vs \[7, 6\]\)"):
        check_tokens(a, b, "ref", "cand")


def test_wrong_reference_caveats_from_gguf_metadata(tmp_path: Path) -> None:
    f16, q4 = MODELS / "tiny-f16.gguf", MODELS / "tiny-q4_0.gguf"
    assert caveats(f16, q4) == []
    qat = tmp_path / "tiny-qat-q4_0.gguf"
    qat.write_bytes(q4.read_bytes())
    assert any("QAT" in line for line in caveats(f16, qat))
    assert any("smaller than the candidate" in line for line in caveats(q4, f16))


def test_llama_perplexity_needs_the_cached_build_tree(tmp_path: Path) -> None:
    from pytest_quantgate.errors import InstallError
    from pytest_quantgate.install import install_perplexity

    with pytest.raises(InstallError, match="run `quantgate install-server` first"):
        install_perplexity(root=tmp_path)


def test_a_reference_whose_model_file_is_missing_names_it(tmp_path: Path) -> None:
    import dataclasses

    from pytest_quantgate.kld.corpus import tiny_corpus
    from pytest_quantgate.kld.measure import Options, preset_reference, reference_lists
    from pytest_quantgate.presets import resolve

    preset = dataclasses.replace(resolve("tiny-f16"), model=tmp_path / "gone.gguf")
    with pytest.raises(KldError, match=r"reference tiny-f16: its model file .*gone\.gguf does not exist"):
        reference_lists(preset_reference(preset, tmp_path), tiny_corpus(), Options(cache_dir=tmp_path))
