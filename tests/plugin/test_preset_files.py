"""Preset files that cannot be used, as a pytest run meets them on the search path."""

from __future__ import annotations

import pytest

LEVEL = """
import pytest

@pytest.mark.level(points=1)
def test_x(llm):
    pass
"""


def test_a_bad_file_beside_the_preset_is_a_warning_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_level=LEVEL)
    presets = pytester.mkdir("presets")
    (presets / "alpha.yaml").write_text("id: alpha\nmodel: /a.gguf\n")
    (presets / "latin1.yaml").write_bytes(b"id: latin\nname: Caf\xe9\n")
    (presets / "quote.yaml").write_text('id: quote\nmodel: /q.gguf\nextra_args: "--alias \'x"\n')
    result = pytester.runpytest_subprocess("--preset-dir", "presets", "--preset", "alpha", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*test_x*"])
    result.stderr.fnmatch_lines(
        [
            "*PresetWarning: skipped presets/latin1.yaml, line 2: not UTF-8 text (byte 0xe9 at offset 19)*",
            "*PresetWarning: skipped presets/quote.yaml: extra_args: * cannot be split like a shell line*",
        ],
        consecutive=False,
    )


def test_asking_for_the_preset_of_a_bad_file_is_a_usage_error_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_level=LEVEL)
    presets = pytester.mkdir("presets")
    (presets / "alpha.yaml").write_text("id: alpha\nmodel: /a.gguf\n")
    (presets / "quote.yaml").write_text('id: quote\nmodel: /q.gguf\nextra_args: "--alias \'x"\n')
    result = pytester.runpytest("--preset-dir", "presets", "--preset", "quote", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*preset 'quote' is in a file that cannot be used:*",
            "*presets/quote.yaml: extra_args: *No closing quotation*",
        ]
    )
