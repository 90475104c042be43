"""Prose levels of the kinds the field compares quants on: voice, multi-hop reasoning, nuance, strict
formatting, edge-case judgement and continuation.

Every rule a prompt sets that a program can check is checked (assert_text, assert_number, assert_exact);
what only a reader can judge (is the voice right, is the distinction subtle enough) is not scored here:
read those answers side by side in the iteration artifacts (``<run>/<preset>/iter-NN.jsonl``, one line
per level run). Every answer's length (``output_chars``) and characters per second (``chars_per_s``, the
field's length-neutral rate: tokenizers differ, characters do not) are recorded as measurements by the
``llm`` fixture below; they appear in the decision table, can be gated (``--gate "chars_per_s_mean >= 40"``)
and are compared against a baseline like tokens/s.

    pytest example_suites/constraints --preset NAME
"""

from __future__ import annotations

import pytest

from pytest_quantgate.validators import assert_exact, assert_number, assert_text


@pytest.fixture
def llm(llm, measure):
    """The plugin's ``llm``, measuring each answer as it comes back (pytest's fixture override)."""
    return MeasuredLlm(llm, measure)


class MeasuredLlm:
    def __init__(self, llm, measure):
        self._llm, self._measure = llm, measure

    def chat(self, prompt, **params):
        __tracebackhide__ = True
        answer = self._llm.chat(prompt, **params)
        self._measure("output_chars", len(answer.content), unit="chars", better="neither")
        if answer.wall_s > 0:
            chars = len(answer.content) + len(answer.reasoning)
            self._measure("chars_per_s", chars / answer.wall_s, unit="chars/s")
        return answer


pytestmark = pytest.mark.gate(
    # Instruction following is what quantization erodes first; a good quant misses a level rarely.
    "score_mean >= 85",
    # A quant that follows the rules in one iteration and breaks them in the next is not a safe swap.
    "score_sigma <= 15",
)


VOICE_MESSAGES = [
    {
        "role": "system",
        "content": (
            "You are Bramble, quartermaster of the airship Marigold. You talk in short, dry sentences, you "
            "never use exclamation marks, and you end every reply with the sign-off '— Bramble' on its own "
            "line. Keep every reply under 120 words."
        ),
    },
    {"role": "user", "content": "Bramble, where do the spare goggles live?"},
    {"role": "assistant", "content": "Third locker, port side. Under the rope nobody coils properly.\n\n— Bramble"},
    {
        "role": "user",
        "content": "We're heading into a storm. Tell the new cadet how to stow the mooring lines.",
    },
]


@pytest.mark.level(points=15)
def test_voice_consistency(llm):
    answer = llm.chat(VOICE_MESSAGES)
    # The persona's checkable rules; "short, dry sentences" is for a reader to judge.
    assert_text(answer.content, ends_with="— Bramble", banned=["!"], max_words=119)


MULTI_HOP_PROMPT = """\
Three depots ship parcels. Depot South ships 250 parcels a day. Depot North ships 40% more parcels a day
than Depot South. Depot East ships as many parcels a day as North and South together, minus 120. Parcels
from North and South weigh 2.5 kg on average; parcels from East weigh 4 kg on average.

How many kilograms do the three depots ship together in a 5-day week? Work it out step by step, then finish
with a line of the form `Answer: N`, where N is the number of kilograms.
"""


@pytest.mark.level(points=20)
def test_multi_hop_reasoning(llm):
    answer = llm.chat(MULTI_HOP_PROMPT)
    # North 350, East 600 - 120 = 480; per day 600 * 2.5 + 480 * 4 = 3420 kg; five days: 17,100 kg.
    assert_number(answer.content, 17_100)


NUANCE_PROMPT = """\
A colleague says that "thread-safe" and "reentrant" mean the same thing for a function. Explain the
difference, and give one example of a function that is thread-safe but not reentrant, and one that is
reentrant but not thread-safe.
"""


@pytest.mark.level(points=10)
def test_nuanced_distinction(llm):
    answer = llm.chat(NUANCE_PROMPT)
    # Nothing here is checkable by a program: the level passes on any non-empty answer, and the answers
    # are compared by reading them (artifacts) and by what the plugin measures (time, length, chars/s).
    assert answer.content.strip(), "the answer is empty"


BANNED_PHRASES = [
    "delve",
    "tapestry",
    "game changer",
    "in today's fast-paced world",
    "it's important to note",
    "seamless",
]

STRICT_PROMPT = f"""\
Write a short piece for a team wiki on why a small team should keep its deployment scripts in version
control. Follow every one of these rules:

1. Exactly three paragraphs, separated by blank lines.
2. No bullet points or numbered lists, no bold text, no headers or titles.
3. Fewer than 350 words in total.
4. Do not use any of these words or phrases: {", ".join(repr(p) for p in BANNED_PHRASES)}.
"""


@pytest.mark.level(points=25)
@pytest.mark.gate("pass_rate >= 80")  # this level alone: formatting rules are the first thing a weak quant drops
def test_strict_constraints(llm):
    answer = llm.chat(STRICT_PROMPT)
    assert_text(
        answer.content,
        paragraphs=3,
        no_bullets=True,
        no_numbered_lists=True,
        no_bold=True,
        no_headers=True,
        max_words=349,
        banned=BANNED_PHRASES,
    )


EDGE_CASE_PROMPT = """\
Apply this refund policy exactly as written.

1. A refund is approved when the request arrives no more than 30 days after the delivery date.
2. Requests that arrive later are denied.
3. Whether the item was used does not matter.
4. If the item arrived damaged, escalate to a person instead of deciding, whatever the dates.

Case: the order was delivered on 1 March 2024. The customer asks for a refund on 31 March 2024 and writes:
"I used the blender twice and it works fine, I just don't need it."

Reply with one word on the first line, APPROVE, DENY or ESCALATE, then explain in one or two sentences.
"""


@pytest.mark.level(points=15)
def test_edge_case_judgement(llm):
    answer = llm.chat(EDGE_CASE_PROMPT)
    lines = answer.content.strip().splitlines()
    # 31 March is exactly 30 days after 1 March: "no more than 30 days" holds, and use does not matter.
    assert_exact(lines[0] if lines else "", "APPROVE")


STORY_SO_FAR = """\
You climb the last of the hundred and twelve steps. Your knees know every one of them. The wind leans on
the door as if it has business inside, and you let it wait. The lamp room smells of oil and cold brass.
Below you the sea is the colour of a slate roof, and somewhere out there a boat is late.\
"""

CONTINUATION_PROMPT = f"""\
Continue this story in the same voice: second person, present tense, short plain sentences.

{STORY_SO_FAR}

Write exactly two more paragraphs, separated by a blank line, and nothing else. Do not use the word
"suddenly". End with this exact sentence: The lamp stays lit.
"""


@pytest.mark.level(points=15)
def test_continuation_in_voice(llm):
    answer = llm.chat(CONTINUATION_PROMPT)
    # Paragraphs, the banned word and the last sentence are checkable; the voice is for a reader.
    assert_text(answer.content, paragraphs=2, banned=["suddenly"], ends_with="The lamp stays lit.")
