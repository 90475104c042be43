"""Level mark values checked at collection, and what the artifacts say was sent: through pytester, against
the real llama-server and the tiny model."""

from __future__ import annotations

import pytest

from pytest_quantgate.artifacts import read_artifacts

pytestmark = pytest.mark.usefixtures("llama_server_bin")


BAD_MARKS = [
    # before: timeout_s=0 fell back to the preset's timeout, -1 raised ValueError in httpcore, max_tokens="64"
    # was an HTTP 400 from llama-server
    ("timeout_s=0", "level timeout_s must be a number of seconds > 0 and <= 1e9, got 0"),
    ("timeout_s=-1", "level timeout_s must be a number of seconds > 0 and <= 1e9, got -1"),
    ("max_tokens='64'", "level max_tokens must be an integer >= 1, got '64'"),
    ("name=7", "level name must be a string, got 7"),
]


@pytest.mark.parametrize(("argument", "shown"), BAD_MARKS, ids=[argument for argument, _ in BAD_MARKS])
def test_a_mark_value_out_of_range_stops_collection_naming_the_test(
    pytester: pytest.Pytester, argument: str, shown: str
) -> None:
    pytester.makepyfile(
        test_marked=f"""
        import pytest
        from pytest_quantgate.tinymodel import tasks

        @pytest.mark.level({argument})
        def test_copy(llm):
            assert tasks.is_correct("copy", "abc", llm.complete(tasks.prompt("copy", "abc")).content)
        """
    )
    result = pytester.runpytest("--preset", "tiny-f16", "--iterations", "1")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error stops the session
    result.stdout.fnmatch_lines([f"*test_marked.py::test_copy: {shown}*"])
    assert not list(pytester.path.glob(".quantgate/runs/*/*/iter-*.jsonl"))  # no level ran


def test_the_artifact_records_the_max_tokens_and_sampler_that_were_sent(pytester: pytest.Pytester) -> None:
    """tiny-f16 sends max_tokens 8 and a greedy sampler; a level without max_tokens was recorded as None."""
    pytester.makepyfile(
        test_sent="""
        import pytest
        from pytest_quantgate.tinymodel import tasks

        @pytest.mark.level
        def test_preset_tokens(llm):
            llm.complete(tasks.prompt("copy", "abc"))

        @pytest.mark.level(max_tokens=4, timeout_s=20)
        def test_own_tokens(llm):
            llm.complete(tasks.prompt("copy", "abc"))
        """
    )
    result = pytester.runpytest("--preset", "tiny-f16", "--iterations", "1")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    (preset_dir,) = pytester.path.glob(".quantgate/runs/*/tiny-f16/")
    records = read_artifacts(str(preset_dir), 1)  # a str path, as a user types it
    preset_params = records["test_preset_tokens"]["requests"][0]["params"]
    assert (preset_params["max_tokens"], preset_params["temperature"], preset_params["top_k"]) == (8, 0.0, 1)
    assert "timeout_s" not in preset_params and "prompt" not in preset_params
    own_params = records["test_own_tokens"]["requests"][0]["params"]
    assert (own_params["max_tokens"], own_params["timeout_s"]) == (4, 20.0)
