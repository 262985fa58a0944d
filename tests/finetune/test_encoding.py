"""Chat template and masking: the loss sees the assistant's tokens (and its end-of-turn marker), nothing else."""

from __future__ import annotations

import copy

import pytest

from llmos.errors import FinetuneError
from llmos.finetune.data import Dialogues, Turn
from llmos.finetune.encoding import IGNORE, encode, encode_chat


def chat(*pairs):
    return [Turn(role=r, content=c) for r, c in pairs]


def trained_text(tokenizer, example):
    """The labelled tokens, decoded run by run (a gap between two runs shows as ' | ')."""
    runs, current = [], []
    for label in example.labels:
        if label == IGNORE:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(label)
    if current:
        runs.append(current)
    return " | ".join(tokenizer.decode(r) for r in runs)


def test_single_turn_trains_on_the_answer_and_its_end_marker_only(tokenizer):
    example = encode_chat(tokenizer, chat(("user", "Where is it?"), ("assistant", "On its way.")), max_length=512)
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Where is it?"}, {"role": "assistant", "content": "On its way."}], tokenize=False
    )
    assert tokenizer.decode(example.input_ids) == full  # the model's own template, system prompt included
    assert trained_text(tokenizer, example) == "On its way.<|im_end|>"
    assert example.target_tokens == len("On its way.") + 1


def test_multi_turn_trains_every_assistant_turn(tokenizer):
    turns = chat(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Card?"), ("assistant", "Blocked."))
    example = encode_chat(tokenizer, turns, max_length=512)
    assert trained_text(tokenizer, example) == "Hello!<|im_end|> | Blocked.<|im_end|>"
    assert "Be brief." in tokenizer.decode(example.input_ids)


def test_an_opening_assistant_turn_is_context(tokenizer):
    turns = chat(("assistant", "Welcome!"), ("user", "Hi"), ("assistant", "How can I help?"))
    assert trained_text(tokenizer, encode_chat(tokenizer, turns, max_length=512)) == "How can I help?<|im_end|>"


def test_long_chats_are_cut_and_hopeless_ones_dropped(tokenizer):
    short = chat(("user", "Q?"), ("assistant", "A long answer that goes on."))
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Q?"}], tokenize=False, add_generation_prompt=True)
    prompt = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    cut = encode_chat(tokenizer, short, max_length=prompt + 4)
    assert len(cut.input_ids) == prompt + 4 and trained_text(tokenizer, cut) == "A lo"
    assert encode_chat(tokenizer, short, max_length=prompt) is None  # not one answer token fits
    data = Dialogues(chats=[short, chat(("user", "x" * 200), ("assistant", "y"))])
    examples, dropped = encode(tokenizer, data, max_length=100)
    assert len(examples) == 1 and dropped == 1


def test_a_template_that_rewrites_history_is_refused(tokenizer):
    changed = copy.deepcopy(tokenizer)  # the session's tokenizer stays as it is
    # Renders the number of messages first: a longer chat never starts with a shorter one.
    changed.chat_template = "{{ messages|length }}{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}"
    with pytest.raises(FinetuneError, match="prefix"):
        encode_chat(changed, chat(("user", "Hi"), ("assistant", "Hello")), max_length=64)
