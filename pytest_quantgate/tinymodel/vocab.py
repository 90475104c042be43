"""The byte-level vocabulary shared by training and GGUF export.

Token ids 0..255 are the raw bytes, so training can tokenize with ``text.encode()`` and needs no tokenizer
library; id 256 is ``<|endoftext|>``, used both as BOS (prepended to every prompt) and as EOS (emitted
right after every answer). The GGUF side spells the byte tokens with GPT-2's ``bytes_to_unicode`` table,
which is what llama.cpp's ``gpt2`` (BPE) tokenizer expects; with a single merge that can never fire,
every byte of a prompt becomes exactly the token id training used.

No torch and no numpy here: the evaluation side imports this module too.
"""

from __future__ import annotations

from functools import cache

EOT_TEXT = "<|endoftext|>"
N_BYTES = 256
EOT_ID = N_BYTES
VOCAB_SIZE = N_BYTES + 1

# llama.cpp token types (enum llama_token_type in llama.h): NORMAL bytes, CONTROL for the special token.
# CONTROL keeps the server from ever rendering "<|endoftext|>" into a completion's text.
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_CONTROL = 3


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-character table.

    Printable Latin-1 bytes map to themselves; the other 68 bytes map to code points from U+0100 upward,
    so that no token string contains whitespace or control characters.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(N_BYTES):
        if b not in table:
            table[b] = chr(N_BYTES + extra)
            extra += 1
    return table


def token_strings() -> list[str]:
    """The GGUF ``tokenizer.ggml.tokens`` list, index = token id."""
    table = bytes_to_unicode()
    return [table[b] for b in range(N_BYTES)] + [EOT_TEXT]


def token_types() -> list[int]:
    """The GGUF ``tokenizer.ggml.token_type`` list, index = token id."""
    return [TOKEN_TYPE_NORMAL] * N_BYTES + [TOKEN_TYPE_CONTROL]


def dummy_merges() -> list[str]:
    """One BPE merge that never applies.

    llama.cpp refuses a ``gpt2`` vocabulary without ``tokenizer.ggml.merges``, and gguf's ``add_array``
    silently drops an empty list, so exactly one merge is written: two NUL bytes, which no prompt contains.
    """
    nul = bytes_to_unicode()[0]
    return [f"{nul} {nul}"]


def encode(text: str, *, bos: bool = True) -> list[int]:
    """Token ids of *text* (UTF-8 bytes), with the BOS token first when *bos*."""
    ids = list(text.encode("utf-8"))
    return [EOT_ID, *ids] if bos else ids


def decode(ids: list[int]) -> str:
    """Text of byte token ids; special tokens are dropped, as the server drops them."""
    return bytes(i for i in ids if i < N_BYTES).decode("utf-8", errors="replace")
