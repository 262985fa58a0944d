"""The llama.cpp engine's logic without weights: shared prompts and grammars, slot choice, the
grammar mask on llama.cpp logits, the joined GGUF file, and choosing the engine by setting."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json

import numpy as np
import pytest
import xgrammar as xgr

import llmos.config
from llmos.errors import PromptError, WeightsError
from llmos.llm import ChatRequest, OutputSchema, SystemMessage, ToolCall, ToolMessage, ToolSpec, UserMessage
from llmos.llm.local import catalog, chat_format
from llmos.llm.local.catalog import CatalogEntry, Chunk, gguf_path, is_gguf_prepared, prepare_gguf
from llmos.llm.local.llama_backend import LlamaCppModel
from llmos.llm.local.llama_engine import MIN_SHARED_PREFIX, Slot, allowed_tokens, choose_slot, common_prefix
from llmos.llm.messages import AssistantMessage

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
NOTE = ToolSpec(
    name="add_note",
    description="Save a note.",
    parameters={"type": "object", "properties": {"text": {"type": "string"}, "tag": {"type": "string"}}},
)


@pytest.fixture(autouse=True)
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMOS_LOCAL_ENGINE", raising=False)
    llmos.config.get_settings.cache_clear()
    yield
    llmos.config.get_settings.cache_clear()


# --- prompts, grammars and answers: one code path for both engines -----------------------------


def recorder():
    seen = []

    def apply(messages, tools):
        seen.append((messages, tools))
        return "PROMPT"

    return apply, seen


def test_render_passes_messages_and_tools_and_opens_a_forced_call():
    apply, seen = recorder()
    call = ToolCall.make("get_weather", {"city": "Oslo"})
    request = ChatRequest(
        messages=[
            SystemMessage(content="Be brief."),
            UserMessage(content="Weather in Oslo?"),
            AssistantMessage(tool_calls=[call]),
            ToolMessage(tool_call_id=call.id, name="get_weather", content="sunny"),
        ],
        tools=[WEATHER],
        tool_choice="get_weather",
    )
    assert chat_format.render(request, apply) == "PROMPT" + chat_format.TOOL_CALL_PREFIX
    (messages, tools), = seen
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert tools == [{"type": "function", "function": WEATHER.model_dump()}]


def test_render_adds_the_output_schema_to_the_system_message_and_keeps_tools_listed_when_none():
    apply, seen = recorder()
    schema = OutputSchema.of({"type": "object", "properties": {"n": {"type": "integer"}}})
    chat_format.render(ChatRequest(messages=[UserMessage(content="hi")], output_schema=schema), apply)
    chat_format.render(ChatRequest(messages=[UserMessage(content="hi")], tools=[WEATHER], tool_choice="none"), apply)
    chat_format.render(ChatRequest(messages=[UserMessage(content="hi")], tools=[WEATHER]), apply)
    (with_schema, no_tools), (plain, listed), (_, callable_tools) = seen
    assert with_schema[0]["role"] == "system" and '"integer"' in with_schema[0]["content"]
    assert no_tools is None and plain == [{"role": "user", "content": "hi"}]
    # Not callable, still listed: the prompt's prefix (and its KV cache) is the one the earlier steps had.
    assert listed == callable_tools == [{"type": "function", "function": WEATHER.model_dump()}]


def test_constraint_schema_for_required_named_and_free_requests():
    ask = [UserMessage(content="hi")]
    required = chat_format.constraint_schema(ChatRequest(messages=ask, tools=[WEATHER, NOTE], tool_choice="required"))
    assert [o["properties"]["name"] for o in required["anyOf"]] == [{"const": "get_weather"}, {"const": "add_note"}]
    named = chat_format.constraint_schema(ChatRequest(messages=ask, tools=[WEATHER, NOTE], tool_choice="add_note"))
    assert named["properties"]["name"] == {"const": "add_note"}
    assert named["properties"]["arguments"]["required"] == ["text", "tag"]  # optional ones made explicit
    assert chat_format.constraint_schema(ChatRequest(messages=ask, tools=[WEATHER])) is None


def test_answer_turns_a_forced_call_into_a_native_call_and_leaves_a_cut_one_as_text():
    request = ChatRequest(messages=[UserMessage(content="hi")], tools=[WEATHER], tool_choice="required")
    message = chat_format.answer(request, '{"name": "get_weather", "arguments": {"city": "Bergen"}}')
    assert message.tool_calls[0].name == "get_weather" and json.loads(message.tool_calls[0].arguments) == {"city": "Bergen"}
    assert chat_format.answer(request, '{"name": "get_wea').content == '{"name": "get_wea'


def test_the_jinja_renderer_matches_transformers_on_a_qwen_style_template():
    from transformers.utils.chat_template_utils import render_jinja_template

    template = (
        "{%- if tools %}{{- '<|im_start|>system\\n# Tools\\n<tools>' }}"
        "{%- for tool in tools %}\n{{- tool | tojson }}{%- endfor %}{{- '\\n</tools><|im_end|>\\n' }}{%- endif %}\n"
        "{%- for message in messages %}\n"
        "    {%- if message.tool_calls %}{{- '<|im_start|>assistant' }}\n"
        "        {%- for tool_call in message.tool_calls %}"
        "{{- '\\n<tool_call>\\n' }}{{- tool_call.function.arguments | tojson }}{{- '\\n</tool_call>' }}"
        "{%- endfor %}{{- '<|im_end|>\\n' }}\n"
        "    {%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}\n"
        "{%- endfor %}\n{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n"
    )
    messages = [
        {"role": "user", "content": "Météo à Zürich? <b>now</b>"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": {"city": "Zürich & <Bern>"}}}]},
        {"role": "tool", "content": "晴"},
    ]
    tools = [{"type": "function", "function": WEATHER.model_dump()}]
    ours = chat_format.jinja_template(template)(messages, tools)
    theirs = render_jinja_template([messages], tools=tools, chat_template=template, add_generation_prompt=True)[0][0]
    assert ours == theirs
    assert "Zürich & <Bern>" in ours  # no HTML escaping, no \\u escapes


# --- slots: where a prompt goes and what it reuses ----------------------------------------------


def slots_with(*token_lists, busy=()):
    slots = []
    for i, tokens in enumerate(token_lists):
        slot = Slot(i)
        slot.tokens = list(tokens)
        slot.last_used = i + 1
        slot.sequence = object() if i in busy else None
        slots.append(slot)
    return slots


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0 and common_prefix([1, 2], [1, 2, 3]) == 2


def test_a_prompt_goes_to_the_slot_that_holds_its_prefix():
    system_a = list(range(100))
    system_b = list(range(1000, 1100))
    slots = slots_with(system_a + [7, 8], system_b + [9], [])
    slot, donor = choose_slot(slots, system_b + [5, 6])
    assert slot.seq_id == 1 and donor is slot


def test_a_short_shared_opening_does_not_overwrite_another_agents_prefix():
    opening = list(range(MIN_SHARED_PREFIX - 1))
    slots = slots_with(opening + [1] * 200, opening + [2] * 200, [])
    slots[0].last_used, slots[1].last_used, slots[2].last_used = 5, 6, 0  # slot 2 never used
    slot, _ = choose_slot(slots, opening + [3] * 50)
    assert slot.seq_id == 2  # the empty slot, not a cached one


def test_a_busy_slots_prefix_is_copied_into_a_free_one():
    prefix = list(range(300))
    slots = slots_with(prefix + [1, 2], [], busy={0})
    slot, donor = choose_slot(slots, prefix + [9])
    assert slot.seq_id == 1 and donor.seq_id == 0


# --- the grammar on llama.cpp's logits ----------------------------------------------------------


def test_allowed_tokens_reads_xgrammars_bitmask():
    vocab = ["a", "b", "yes", "no", "</s>", "x", "y", "z"] + [f"t{i}" for i in range(40)]
    info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=len(vocab), stop_token_ids=[4])
    grammar = xgr.GrammarCompiler(info).compile_grammar('root ::= "yes" | "no"')
    matcher = xgr.GrammarMatcher(grammar)
    bitmask = xgr.allocate_token_bitmask(1, len(vocab))
    matcher.fill_next_token_bitmask(bitmask)
    allowed = allowed_tokens(bitmask.numpy(), len(vocab))
    # "yes", "no", and "y", which starts "yes"; never the others nor the stop token before an answer
    assert allowed.shape == (len(vocab),) and set(np.flatnonzero(allowed)) == {2, 3, 6}


# --- the joined GGUF file ----------------------------------------------------------------------


def fake_entry(monkeypatch, tmp_path, sha256=None):
    site = tmp_path / "site"
    contents = (b"GGUF first ", b"second")
    chunks = []
    for n, data in enumerate(contents, 1):
        package = site / f"llmos_fake_gguf_{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / "part.bin").write_bytes(data)
        chunks.append(Chunk(requirement=f"llmos-fake-gguf-{n}==1.0", module=package.name, path="data/part.bin"))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    real = hashlib.sha256(b"".join(contents)).hexdigest()
    entry = CatalogEntry(name="fake-gguf", description="test", extra="fake", chunks=chunks, sha256=sha256 or real)
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    return entry


def test_prepare_gguf_joins_checks_and_is_idempotent(monkeypatch, tmp_path):
    fake_entry(monkeypatch, tmp_path)
    assert not is_gguf_prepared("fake-gguf")
    path = prepare_gguf("fake-gguf", progress=False)
    assert path == gguf_path("fake-gguf") and path.read_bytes() == b"GGUF first second"
    assert is_gguf_prepared("fake-gguf")
    mtime = path.stat().st_mtime_ns
    assert prepare_gguf("fake-gguf", progress=False) == path and path.stat().st_mtime_ns == mtime
    path.write_bytes(b"GGUF first")  # truncated by hand: no longer counts
    assert not is_gguf_prepared("fake-gguf")


def test_prepare_gguf_refuses_corrupt_chunks_and_leaves_nothing(monkeypatch, tmp_path):
    fake_entry(monkeypatch, tmp_path, sha256="ab" * 32)
    with pytest.raises(WeightsError, match="corrupt"):
        prepare_gguf("fake-gguf", progress=False)
    assert list(gguf_path("fake-gguf").parent.iterdir()) == []


# --- choosing the engine ---------------------------------------------------------------------


def test_the_engine_setting_picks_the_backend_and_models_show_it(monkeypatch, tmp_path):
    from llmos.llm import get_model, known_models
    from llmos.llm.local.backend import LocalModel

    model = get_model("qwen2.5-coder-0.5b")  # llama.cpp is the default engine
    assert isinstance(model, LlamaCppModel) and model.name == "qwen2.5-coder-0.5b"
    info = {i.name: i for i in known_models()}["qwen2.5-coder-1.5b"]
    assert info.engine == "llamacpp" and info.quantization.startswith("Q4_K_M")
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    assert isinstance(get_model(str(gguf)), LlamaCppModel)
    monkeypatch.setenv("LLMOS_LOCAL_ENGINE", "transformers")
    llmos.config.get_settings.cache_clear()
    assert isinstance(get_model("qwen2.5-coder-0.5b"), LocalModel)
    assert all(i.engine == "transformers" and i.quantization.startswith("none") for i in known_models())


def test_an_unknown_engine_is_refused(monkeypatch):
    monkeypatch.setenv("LLMOS_LOCAL_ENGINE", "onnx")
    with pytest.raises(ValueError, match="llamacpp"):
        llmos.config.Settings()


async def test_a_file_that_is_not_a_model_is_a_weights_error_and_the_model_still_answers_errors(tmp_path):
    model = LlamaCppModel(tmp_path / "missing.gguf")
    try:
        with pytest.raises(WeightsError, match="GGUF"):
            await model.chat(ChatRequest(messages=[UserMessage(content="hi")], max_tokens=2))
        with pytest.raises(PromptError, match="max_tokens"):
            await model.chat(ChatRequest(messages=[UserMessage(content="hi")], max_tokens=0))
    finally:
        await asyncio.wait_for(model.aclose(), 10)


def test_an_answer_ends_before_a_tool_call_it_writes_a_second_time():
    call = '{"name": "escalate_to_human", "arguments": {"reason": "asked"}}'
    other = '{"name": "lookup_order", "arguments": {"order_id": "O1"}}'
    assert chat_format.before_repeated_call(f"{call}\n{other}\n{call}\n") == f"{call}\n{other}"
    assert chat_format.before_repeated_call(f"{call}\n{call}\n{{") == call  # read as soon as the copy's line ends
    tagged = f"<tool_call>\n{call}\n</tool_call>\n<tool_call>\n{call}\n"
    assert chat_format.before_repeated_call(tagged) == f"<tool_call>\n{call}\n</tool_call>"
    # Distinct calls, a copy still being written, and repeated prose go on.
    assert chat_format.before_repeated_call(f"{call}\n{other}\n") is None
    assert chat_format.before_repeated_call(f"{call}\n{call}") is None
    assert chat_format.before_repeated_call("Sure.\n\nSure.\n") is None


def test_only_a_free_choice_of_tools_is_watched_for_repeated_calls():
    ask = [UserMessage(content="hi")]
    assert chat_format.may_call_freely(ChatRequest(messages=ask, tools=[WEATHER]))
    for choice in ("none", "required", "get_weather"):
        assert not chat_format.may_call_freely(ChatRequest(messages=ask, tools=[WEATHER], tool_choice=choice))
    assert not chat_format.may_call_freely(ChatRequest(messages=ask))
