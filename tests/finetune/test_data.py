"""Reading dialogue files: both shapes, both formats, the seeded split, and every kind of bad data."""

from __future__ import annotations

import csv
import json

import pytest

from llmos.errors import DialogueDataError, LLMOSError
from llmos.finetune.data import read_dialogues


def write_csv(path, header, rows):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_single_turn_csv_with_named_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["instruction", "response", "intent"],
                     [["Where is my order?", "It ships today.", "track"], ["Refund please", "Done, 3 days.", "refund"]])
    data = read_dialogues(path, question_column="instruction", answer_column="response", system="You are support.")
    assert len(data) == 2
    assert [(t.role, t.content) for t in data.chats[0]] == [
        ("system", "You are support."), ("user", "Where is my order?"), ("assistant", "It ships today.")
    ]
    assert len(data.sha256) == 64 and data.source == str(path)


def test_multi_turn_json_lines_and_csv_messages_column(tmp_path):
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "My card?"}, {"role": "assistant", "content": "Blocked now."}]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps({"messages": chat}) + "\n\n" + json.dumps({"messages": chat[:2]}) + "\n")
    data = read_dialogues(jsonl)
    assert [len(c) for c in data.chats] == [4, 2]
    assert data.chats[0][3].content == "Blocked now."
    as_csv = write_csv(tmp_path / "m.csv", ["conversation"], [[json.dumps(chat)]])
    assert read_dialogues(as_csv, messages_column="conversation").chats == data.chats[:1]
    array = tmp_path / "a.json"
    array.write_text(json.dumps([{"question": "q?", "answer": "a."}]))
    assert read_dialogues(array).chats[0][1].content == "a."


def test_split_is_seeded_disjoint_and_capped(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["question", "answer"], [[f"q{i}", f"a{i}"] for i in range(100)])
    data = read_dialogues(path)
    train, valid = data.split(0.1, max_validation=8, seed=3)
    again_train, again_valid = data.split(0.1, max_validation=8, seed=3)
    assert len(valid) == 8 and len(train) == 92  # 10% would be 10: capped at 8
    assert valid.chats == again_valid.chats and train.chats == again_train.chats
    questions = {c[0].content for c in train.chats}
    assert not questions & {c[0].content for c in valid.chats}
    assert data.split(0.1, max_validation=8, seed=4)[1].chats != valid.chats
    none_train, none_valid = data.split(0.0, max_validation=8)
    assert len(none_train) == 100 and len(none_valid) == 0


@pytest.mark.parametrize(
    "name, content, kwargs, expected",
    [
        ("empty.csv", "", {}, "is empty"),
        ("blank.jsonl", "\n  \n", {}, "is empty"),
        ("header.csv", "question,answer\n", {}, "has no dialogues, only a header"),
        ("cols.csv", "prompt,reply\nhi,hello\n", {}, "no 'messages' column and no 'question' or 'answer' column; its columns are: prompt, reply"),
        ("half.csv", "question,reply\nhi,hello\n", {}, "no 'answer' column"),
        ("gap.csv", "question,answer\nhi,hello\nhow?,\n", {}, "row 3: the 'answer' column is empty"),
        ("bad.jsonl", '{"question": "q", "answer": "a"}\n{oops\n', {}, "line 2 is not valid JSON"),
        ("list.jsonl", '["q", "a"]\n', {}, "expected a JSON object"),
        ("noanswer.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}]}), {}, "no assistant turn"),
        ("role.jsonl", json.dumps({"messages": [{"role": "bot", "content": "hi"}]}), {}, "each message needs a role"),
        ("cell.csv", 'messages\n"not json"\n', {}, "the messages are not valid JSON"),
        ("data.txt", "q,a\n", {}, "unknown format '.txt'"),
    ],
)
def test_bad_data_is_a_clear_error(tmp_path, name, content, kwargs, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DialogueDataError) as info:
        read_dialogues(path, **kwargs)
    assert expected in str(info.value)
    assert isinstance(info.value, LLMOSError)


def test_missing_file_and_too_few_to_split(tmp_path):
    with pytest.raises(DialogueDataError, match="No dialogue file"):
        read_dialogues(tmp_path / "nope.csv")
    one = read_dialogues(write_csv(tmp_path / "one.csv", ["question", "answer"], [["q", "a"]]))
    with pytest.raises(DialogueDataError, match="too few to keep some for validation"):
        one.split(0.1, max_validation=8)
