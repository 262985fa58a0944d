"""One loaded model and one generation at a time, synchronously.

`Engine` turns a ChatRequest into a prompt with the model's chat template,
runs its own token-by-token decode loop (so it can stop on a flag, count
tokens and stream text), and constrains decoding with xgrammar when the
answer must be a tool call or match a JSON schema. It is not thread-safe:
`LocalModel` calls it from a single worker thread.
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from llmos.errors import ConfigError, PromptError
from llmos.llm.local import chat_format
from llmos.llm.messages import AssistantMessage
from llmos.llm.model import ChatRequest, Usage

class Generation:
    """What one decode produced: the text (or JSON), token counts and why it stopped."""

    def __init__(self, text: str, usage: Usage, finish_reason: Literal["stop", "length"]) -> None:
        self.text = text
        self.usage = usage
        self.finish_reason = finish_reason


def pick_dtype(name: str | None = None):
    """The compute dtype: LLMOS_LOCAL_DTYPE if set, else bfloat16 where the CPU multiplies it natively.

    bf16 halves the bytes read per decoded token, but where the CPU has no bf16 instructions
    (AVX512-BF16 or AMX) torch emulates it and prefill, most of an agent's work, crawls.
    Measured with the 0.5B model on 2 cores (decode / prefill tokens/s): AVX-512+AMX, bf16
    12.8 / ~375, fp32 6.4 / ~150; AMD EPYC with AVX2 only, bf16 10.8 / 19, fp32 5.5 / 84.
    """
    import torch

    name = name or os.environ.get("LLMOS_LOCAL_DTYPE") or ("bfloat16" if cpu_has_native_bf16() else "float32")
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ConfigError(f"Unknown dtype '{name}' (LLMOS_LOCAL_DTYPE): use one of {', '.join(dtypes)}.")
    return dtypes[name]


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes bf16 in hardware (the avx512_bf16 or amx_bf16 flag, Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: assume not, fp32 is never slow to compute
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


class Engine:
    """A transformers causal LM, its tokenizer, and an xgrammar compiler for its vocabulary."""

    def __init__(self, path: Path, *, threads: int, dtype: str | None = None, adapter: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub from here
        import torch
        import xgrammar as xgr
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # loading takes seconds; its bar would cut into a chat

        torch.set_num_threads(threads)
        self.torch, self.xgr = torch, xgr
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(dtype), local_files_only=True)
        if adapter is not None:
            self.model = _with_adapter(self.model, adapter)
        self.model.eval()
        # transformers renamed the KV-cache argument from `past_key_values` to `cache` in 5.x.
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.stop_ids = self._stop_ids()
        self.vocab_size = self.model.config.vocab_size
        info = xgr.TokenizerInfo.from_huggingface(
            self.tokenizer, vocab_size=self.vocab_size, stop_token_ids=sorted(self.stop_ids)
        )
        # xgrammar: the structured-decoding engine vLLM uses; compiled C++, so the per-token
        # mask costs microseconds. Compiled grammars are cached by schema text.
        self.compiler = xgr.GrammarCompiler(info, max_threads=threads)
        self._grammars: dict[str, Any] = {}
        self._cache: Any = None  # KV cache of the last request, and the token ids it holds
        self._cache_ids: list[int] = []
        self._markup_ids: list[int] | None = None
        # A prose-only answer never opens a tool call, even after its first word.
        self._tool_call_open = self.tokenizer.encode(chat_format.TOOL_CALL_OPEN, add_special_tokens=False)[:1]

    def _stop_ids(self) -> set[int]:
        ids: set[int] = set()
        for value in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(value)
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            ids.add(im_end)
        return ids

    # --- prompt -----------------------------------------------------------------

    def render(self, request: ChatRequest) -> str:
        """The prompt text: the model's chat template over the messages and tools (see chat_format)."""

        def apply(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
            kwargs = {"tools": tools} if tools else {}
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)

        return chat_format.render(request, apply)

    def grammar(self, request: ChatRequest):
        """The compiled grammar the answer must follow, or None for free text."""
        schema = chat_format.constraint_schema(request)
        if schema is None:
            return None
        text = json.dumps(schema)  # keeps property order: the grammar writes properties in this order
        if text not in self._grammars:
            # One line with ", " and ": " separators, as Qwen writes JSON; no free whitespace,
            # which weak models can otherwise fill forever.
            self._grammars[text] = self.compiler.compile_json_schema(text, any_whitespace=False)
        return self._grammars[text]

    # --- decoding ----------------------------------------------------------------

    def generate(
        self,
        request: ChatRequest,
        *,
        max_context: int,
        default_max_tokens: int,
        on_text: Callable[[str], None],
        stop: threading.Event,
    ) -> Generation | None:
        """Decode one answer. Calls `on_text` with new text (free text only); None if `stop` was set."""
        torch, xgr = self.torch, self.xgr
        prompt_ids = self.tokenizer(self.render(request), add_special_tokens=False)["input_ids"]
        n_prompt = len(prompt_ids)
        if n_prompt >= max_context:
            raise PromptError(
                f"The prompt is {n_prompt} tokens, but this model's context holds {max_context} "
                f"(leaving room to answer). Shorten the conversation or the documents in it, "
                f"or raise max_context if the model supports more."
            )
        max_new = min(request.max_tokens or default_max_tokens, max_context - n_prompt)
        compiled = self.grammar(request)
        matcher = bitmask = None
        if compiled is not None:
            matcher = xgr.GrammarMatcher(compiled, terminate_without_stop_token=True)
            bitmask = xgr.allocate_token_bitmask(1, self.vocab_size)

        cache, in_cache = self._reuse_cache(prompt_ids)
        self._cache, self._cache_ids = None, []  # in use: never reused half-updated
        inputs = prompt_ids[len(in_cache):]
        generated: list[int] = []
        if matcher is not None:
            forced = self._jump_forward(matcher)
            generated = list(forced)
            inputs = inputs + forced
        # Tools given but not to be called: the answer must be words, and small models would
        # otherwise write one more call as JSON text. Banning the tool-call tag, and a first
        # token that opens JSON, a fence or a tag, is enough; the rest of the answer is free.
        prose_only = compiled is None and bool(request.tools) and request.tool_choice == "none"
        calls_freely = chat_format.may_call_freely(request)  # a copy of a call it wrote ends the answer
        cut_text: str | None = None
        sent = ""
        finish: Literal["stop", "length"] = "length"
        with torch.inference_mode():
            while len(generated) < max_new:
                if stop.is_set():
                    return None
                out = self.model(
                    input_ids=torch.tensor([inputs]), use_cache=True, logits_to_keep=1, **{self._cache_arg: cache}
                )
                cache = getattr(out, self._cache_arg)
                in_cache.extend(inputs)
                self._cache, self._cache_ids = cache, in_cache
                logits = out.logits[:, -1, :].float()
                if matcher is not None:
                    matcher.fill_next_token_bitmask(bitmask)
                    xgr.apply_token_bitmask_inplace(logits, bitmask)
                elif prose_only:
                    logits[0, self._tool_call_open] = float("-inf")
                    if not generated:
                        logits[0, self._markup_starts()] = float("-inf")
                token = _sample(torch, logits[0], request.temperature)
                inputs = [token]
                if matcher is None:
                    if token in self.stop_ids:
                        finish = "stop"
                        break
                    generated.append(token)
                    text = self.tokenizer.decode(generated, skip_special_tokens=True)
                    # Hold back a trailing partial UTF-8 character until its next byte arrives.
                    if len(text) > len(sent) and not text.endswith("\ufffd"):
                        on_text(text[len(sent):])
                        sent = text
                    if calls_freely and "\n" in self.tokenizer.decode([token]):
                        cut_text = chat_format.before_repeated_call(text)
                        if cut_text is not None:
                            finish = "stop"
                            break
                    continue
                generated.append(token)
                matcher.accept_token(token)
                if not matcher.is_terminated():
                    forced = self._jump_forward(matcher)
                    generated += forced
                    inputs += forced
                if matcher.is_terminated():
                    finish = "stop"
                    break
        if cut_text is not None:
            return Generation(cut_text, Usage(prompt_tokens=n_prompt, completion_tokens=len(generated)), finish)
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        if matcher is None and text[len(sent):]:
            on_text(text[len(sent):])
        # The stop token counts as produced, as OpenAI-compatible servers count it.
        n_completion = len(generated) + (1 if finish == "stop" and matcher is None else 0)
        return Generation(text, Usage(prompt_tokens=n_prompt, completion_tokens=n_completion), finish)

    def _markup_starts(self) -> list[int]:
        """Ids of tokens whose text starts with `{`, `[`, `<` or a backtick, once whitespace is stripped."""
        if self._markup_ids is None:
            pieces = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            self._markup_ids = [i for i, p in enumerate(pieces) if p.strip()[:1] in ("{", "[", "<", "`")]
        return self._markup_ids

    def _reuse_cache(self, prompt_ids: list[int]) -> tuple[Any, list[int]]:
        """The KV cache of the previous request, cut to the prefix it shares with this prompt.

        Agents send the same system prompt and tool schemas first in every request, so most of
        a prompt is usually already computed: this is vLLM's prefix caching, for one entry.
        """
        cache, ids = self._cache, self._cache_ids
        if cache is None or cache.get_seq_length() != len(ids):
            return None, []
        keep = 0
        for a, b in zip(ids, prompt_ids):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(prompt_ids) - 1)  # feed at least one token, to get the next logits
        if keep == 0:
            return None, []
        if len(ids) > keep:
            cache.crop(-(len(ids) - keep))  # negative: drop that many tokens from the end
        return cache, ids[:keep]

    def _jump_forward(self, matcher: Any) -> list[int]:
        """Tokens the grammar forces next (`{"name": "`, a named tool's name...): fed in one step."""
        text = matcher.find_jump_forward_string()
        if not text or not matcher.accept_string(text):
            return []
        return self.tokenizer.encode(text, add_special_tokens=False)

    def answer(self, request: ChatRequest, generation: Generation) -> AssistantMessage:
        """The assistant message for a finished generation: a native tool call when one was forced."""
        return chat_format.answer(request, generation.text)


def _with_adapter(model: Any, adapter: Path) -> Any:
    """The model with a LoRA adapter merged into its weights: it then decodes exactly as fast as the base."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ConfigError("Adapters need PEFT: pip install 'llmos[finetune]'.") from None
    return PeftModel.from_pretrained(model, adapter, is_trainable=False).merge_and_unload()


def _sample(torch, logits, temperature: float) -> int:
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1))
