"""Tokenizer of the tiny VLA, built locally (no hub download): lower-cased words + punctuation.

Layout of the vocabulary: ``<unk> <s> </s> <pad>``, then the words, then 256 action tokens, so that,
as in OpenVLA, the LAST 256 ids are the action bins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]

# The prompt template's words plus the vocabulary of tabletop manipulation instructions (robosuite,
# LIBERO, SimplerEnv/Bridge style). Extra words (new tasks) are added with ``extra_words``.
_BASE_TEXT = """
in what action should the robot take to out ? : . , ' -
a an the this that it its of on onto into in inside at from with and then or up down off over under
above below next near left right front back behind top bottom middle center side corner far close
pick place put move push pull lift raise lower grasp grab hold release drop open close turn rotate
twist slide insert stack unstack pour wipe press flip fold unfold knock reach touch bring carry set
hang remove take get go stop fetch store empty fill tilt point
can cans bread milk cereal box bottle cup mug bowl plate spoon fork knife block blocks cube cubes
door drawer cabinet lid handle knob button nut peg round square tool hammer sponge towel cloth
basket bin tray table counter shelf stove sink microwave oven fridge pot pan kettle ketchup soup
sauce butter cheese cream carrot apple orange banana lemon coke pepsi sprite juice water
object objects item thing container bag book can's gripper arm hand
red green blue yellow white black orange purple pink brown gray grey small large big tall short
wooden metal plastic first second third one two three all both other another same last
bin1 bin2 bin3 bin4 region target goal
"""
BASE_WORDS = _BASE_TEXT.split()

_WORD_RE = re.compile(r"\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """The pre-tokenizer's segmentation, reproduced to report unknown words by name."""
    return _WORD_RE.findall(text.lower())


def action_token(i: int) -> str:
    return f"<act_{i:03d}>"


def build_tokenizer(extra_words: Iterable[str] = (), n_action_bins: int = 256) -> PreTrainedTokenizerFast:
    words: list[str] = []
    seen = set(SPECIAL_TOKENS)
    for w in [*BASE_WORDS, *(x for text in extra_words for x in split_words(text))]:
        if w not in seen:
            seen.add(w)
            words.append(w)
    tokens = SPECIAL_TOKENS + words + [action_token(i) for i in range(n_action_bins)]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return word_level_tokenizer(vocab, pad_token="<pad>", padding_side="left")


def word_level_tokenizer(
    vocab: dict[str, int], *, pad_token: str, padding_side: str
) -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer over ``vocab`` with Llama's <unk>=0, <s>=1, </s>=2 specials.

    The tiny VLA's tokenizer and the mini OpenVLA's Llama-id-compatible one share it; they differ in their
    vocabulary, their pad token and the side they pad on.
    """
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    # Whitespace = \w+|[^\w\s]+ ; Punctuation splits runs like "?:" into single symbols.
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    # <s> first, like Llama's tokenizer, so the vision prefix can go right after it.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token=pad_token,
        padding_side=padding_side,
    )
