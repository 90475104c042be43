"""The tiny model's synthetic tasks: deterministic, split cleanly, and scored by exact match."""

from __future__ import annotations

import random
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.tinymodel import tasks, vocab

TASK_NAMES = sorted(tasks.TASKS)


def test_registry_points_sum_to_100_and_names_match():
    assert sum(t.points for t in tasks.TASKS.values()) == 100
    for name, task in tasks.TASKS.items():
        assert task.name == name
        assert 1 <= task.difficulty <= 5


def test_points_grow_with_difficulty():
    ordered = sorted(tasks.TASKS.values(), key=lambda t: t.difficulty)
    assert [t.points for t in ordered] == sorted(t.points for t in ordered)


@pytest.mark.parametrize(
    ("task", "item", "prompt", "answer"),
    [
        ("copy", "abc", "copy abc=", "abc"),
        ("reverse", "abcd", "reverse abcd=", "dcba"),
        ("inc", "199", "inc 199=", "200"),
        ("inc", "999", "inc 999=", "1000"),
        ("add2", "47+85", "add2 47+85=", "132"),
        ("add3", "12+34+56", "add3 12+34+56=", "102"),
    ],
)
def test_prompt_and_answer_examples(task, item, prompt, answer):
    assert tasks.prompt(task, item) == prompt
    assert tasks.answer(task, item) == answer


def test_unknown_task_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown tiny-model task 'nope'"):
        tasks.prompt("nope", "x")


@pytest.mark.parametrize("task", TASK_NAMES)
def test_held_out_items_are_deterministic_distinct_and_held_out(task):
    first = tasks.held_out_items(task, 200)
    assert first == tasks.held_out_items(task, 200)
    assert len(first) == len(set(first))
    assert all(tasks.is_held_out(task, item) for item in first)
    assert len(first) >= 150  # every task has a usable evaluation split
    assert tasks.held_out_items(task, 50) == first[:50]


@pytest.mark.parametrize("task", TASK_NAMES)
def test_training_stream_never_yields_held_out_items(task):
    stream = tasks.training_items(task, seed=3)
    drawn = [next(stream) for _ in range(3000)]
    assert not any(tasks.is_held_out(task, item) for item in drawn)
    assert not set(drawn) & set(tasks.held_out_items(task, 500))
    again = tasks.training_items(task, seed=3)
    assert [next(again) for _ in range(3000)] == drawn


def test_split_does_not_depend_on_python_hash_seed(pytester):
    # The split must be the same in every process; Python's own hash() is salted per process.
    code = "from pytest_quantgate.tinymodel import tasks;print(tasks.held_out_items('add3', 20))"
    outs = {pytester.run(sys.executable, "-c", code, timeout=60).stdout.str().strip() for _ in range(2)}
    assert len(outs) == 1
    assert outs == {str(tasks.held_out_items("add3", 20))}


@settings(max_examples=200, deadline=None)
@given(task=st.sampled_from(TASK_NAMES), seed=st.integers(0, 2**32))
def test_sampled_training_items_are_never_held_out(task, seed):
    rng = random.Random(seed)
    item = tasks.sample_training_item(task, rng)
    assert not tasks.is_held_out(task, item)


@settings(max_examples=200, deadline=None)
@given(task=st.sampled_from(TASK_NAMES), seed=st.integers(0, 2**32))
def test_prompt_answer_round_trip_through_the_byte_vocab(task, seed):
    item = tasks.sample_training_item(task, random.Random(seed))
    text = tasks.prompt(task, item)
    ids = vocab.encode(text)
    assert ids[0] == vocab.EOT_ID
    assert vocab.decode(ids) == text
    assert text.startswith(f"{task} ") and text.endswith("=")
    assert text[len(task) + 1 : -1] == item
    correct = tasks.answer(task, item)
    assert tasks.is_correct(task, item, correct)
    assert vocab.decode([*vocab.encode(correct, bos=False), vocab.EOT_ID]) == correct


@given(a=st.integers(10, 99), b=st.integers(10, 99), c=st.integers(10, 99))
def test_addition_answers_are_the_sums(a, b, c):
    assert tasks.answer("add2", f"{a}+{b}") == str(a + b)
    assert tasks.answer("add3", f"{a}+{b}+{c}") == str(a + b + c)


@given(word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=5))
def test_copy_and_reverse_answers(word):
    assert tasks.answer("copy", word) == word
    assert tasks.answer("reverse", word) == word[::-1]


def test_is_correct_strips_whitespace_and_demands_exact_match():
    assert tasks.is_correct("add2", "47+85", "132")
    assert tasks.is_correct("add2", "47+85", " 132\n")
    assert not tasks.is_correct("add2", "47+85", "1320")
    assert not tasks.is_correct("add2", "47+85", "13")
    assert not tasks.is_correct("add2", "47+85", "")
    assert not tasks.is_correct("copy", "abc", "ABC")


def test_different_seeds_pick_different_orders_of_the_same_split():
    a, b = tasks.held_out_items("add2", 100, seed=0), tasks.held_out_items("add2", 100, seed=1)
    assert a != b
    assert all(tasks.is_held_out("add2", item) for item in a + b)


def test_gguf_vocab_is_byte_level_and_reversible():
    strings = vocab.token_strings()
    assert len(strings) == vocab.VOCAB_SIZE == len(vocab.token_types())
    assert strings[vocab.EOT_ID] == "<|endoftext|>"
    assert len(set(strings)) == len(strings)
    assert all(len(s) == 1 and not s.isspace() for s in strings[: vocab.N_BYTES])
    assert strings[ord("a")] == "a"
    merges = vocab.dummy_merges()
    assert len(merges) == 1


def test_committed_manifest_matches_the_committed_files():
    import hashlib
    import json

    from pytest_quantgate.tinymodel import MODELS_DIR

    manifest_path = MODELS_DIR / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip("no committed tiny model yet")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert set(manifest["tasks"]) == set(tasks.TASKS)
    for quant, entry in manifest["quants"].items():
        path = MODELS_DIR / entry["file"]
        assert path.is_file(), quant
        assert path.stat().st_size == entry["size_bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert set(entry["accuracy"]) == set(tasks.TASKS)
