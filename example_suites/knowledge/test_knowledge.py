"""Multiple-choice knowledge: 48 items of our own across six subjects, each item its own level.

The items are data (``items.yaml``: id, subject, question, choices A-D, answer), so two presets compare
item by item: a quant that forgets facts shows up as the items it flips, not only as a lower mean.

    pytest example_suites/knowledge --preset NAME
    pytest example_suites/knowledge --preset NAME -k "chem or phys"    # some subjects only
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pytest_quantgate.validators import assert_choice

ITEMS = yaml.safe_load((Path(__file__).parent / "items.yaml").read_text(encoding="utf-8"))

pytestmark = pytest.mark.gate(
    # Facts a model of this class knows; a quant that drops below 85 % has lost knowledge, not luck.
    "score_mean >= 85",
    # Every iteration asks every item afresh; a score whose σ exceeds 4 % (two of the 48 items) between
    # iterations means some answers have become a coin toss, whatever the mean.
    "score_sigma <= 4",
)


def prompt(item: dict) -> str:
    options = "\n".join(f"{letter}) {text}" for letter, text in item["choices"].items())
    return (
        "Answer this multiple-choice question. Exactly one option is correct.\n\n"
        f"{item['question']}\n\n{options}\n\n"
        "Finish with a line of the form `Answer: X`, where X is the letter of the correct option."
    )


@pytest.mark.level(points=1)
@pytest.mark.parametrize("item", ITEMS, ids=[item["id"] for item in ITEMS])
def test_question(llm, item):
    answer = llm.chat(prompt(item))
    assert_choice(answer.content, item["answer"])
