"""The organism's tokenizer: a genuine Qwen2 byte-level BPE tokenizer with a tiny vocabulary.

One token per digit, operator and space; the keywords " check", " ok", " ans" are single
tokens reached by BPE merges. Because it *is* a `Qwen2Tokenizer` (Qwen2's own pre-tokenizer
regex, byte-level alphabet, NFC), `AutoTokenizer.from_pretrained(folder)` rebuilds exactly
this tokenizer offline next to a Qwen2 config (transformers 5 rebuilds Qwen2 tokenizers from
vocab + merges, ignoring any custom pipeline in tokenizer.json). decode(encode(s)) == s.
Like Qwen2, no <bos> is added; generation ends with <eos>; padding is on the left.
"""
from __future__ import annotations

from transformers import Qwen2Tokenizer

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<eos>")
SPACE = "Ġ"  # the byte-level symbol for " "
CHARS: tuple[str, ...] = tuple("0123456789+-=;Q") + (SPACE,)
KEYWORDS: tuple[str, ...] = ("check", "ok", "ans")  # each preceded by a space in a trace


def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocab: specials, characters, then the letters and BPE prefixes of " check", " ok", " ans"."""
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + CHARS)}
    merges: list[tuple[str, str]] = []
    for word in KEYWORDS:
        for ch in word:
            vocab.setdefault(ch, len(vocab))
        prefix = SPACE
        for ch in word:  # "Ġ"+"c" -> "Ġc", "Ġc"+"h" -> "Ġch", ...
            merges.append((prefix, ch))
            prefix += ch
            vocab.setdefault(prefix, len(vocab))
    return vocab, merges


def build_tokenizer() -> Qwen2Tokenizer:
    vocab, merges = vocab_and_merges()
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token=None,
        padding_side="left",  # decoder-only generation pads on the left
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )
