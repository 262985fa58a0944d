"""The llama.cpp engine: the quantised GGUF weights as shipped, several requests decoded in one batch.

One llama.cpp context holds `parallel` sequences ("slots"), each with a KV cache of its own.
Each `step` feeds one batch: the next token of every answer in progress and a
piece of each prompt still being read, so a long prompt does not hold up answers
that are already streaming, and four answers cost little more than one (a CPU
reads the weights once per step, whatever the number of sequences).

Prefix reuse: a slot keeps its KV cache after its request ends. The next request
goes to the slot that shares the longest prefix with it (system prompt, tool
schemas, earlier turns) and copies a longer shared prefix from any other slot,
so only the new tokens are computed; agents that alternate keep one slot each.
Memory is bounded by the context: `parallel` x `max_context` token cells.

Prompts, constraints and answers come from chat_format, as in the transformers
engine, and forced calls and output schemas are the same xgrammar grammars,
applied to llama.cpp's logits. Not thread-safe: LlamaCppModel drives it from
one worker thread.
"""

from __future__ import annotations

import codecs
import ctypes
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmos.errors import ModelError, PromptError, WeightsError
from llmos.llm.local import chat_format
from llmos.llm.local.engine import Generation
from llmos.llm.model import ChatRequest, Usage

BATCH_TOKENS = 512
"""Tokens fed to llama.cpp per step, all sequences together (prompt pieces are cut to fit)."""

MIN_SHARED_PREFIX = 32
"""A slot is chosen for the prefix it holds only when it shares at least this many tokens;
otherwise the least recently used slot is taken, so that short shared openings (the chat
template's first tokens) do not make a request overwrite another agent's cached prefix."""


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two token lists share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def allowed_tokens(bitmask: np.ndarray, n_vocab: int) -> np.ndarray:
    """xgrammar's token bitmask (int32 words, bit i of the vocabulary set when token i is allowed) as booleans."""
    bits = np.unpackbits(np.ascontiguousarray(bitmask).view(np.uint8), bitorder="little")
    return bits[:n_vocab].astype(bool)


class Slot:
    """One sequence of the context: the tokens its KV cache holds, and the request using it, if any."""

    def __init__(self, seq_id: int) -> None:
        self.seq_id = seq_id
        self.tokens: list[int] = []  # exactly what the KV cache holds, positions 0..len-1
        self.sequence: Sequence | None = None
        self.last_used = 0


def choose_slot(slots: list[Slot], prompt: list[int]) -> tuple[Slot, Slot]:
    """Where a prompt goes: (the idle slot to use, the slot to copy its prefix from).

    The idle slot sharing the longest prefix, if that is worth keeping, else the least
    recently used idle one; and the slot, busy or not (computed tokens are valid either
    way), that shares the longest prefix of all.
    """
    idle = [s for s in slots if s.sequence is None]
    shared = {s.seq_id: common_prefix(s.tokens, prompt) for s in slots}
    slot = max(idle, key=lambda s: (shared[s.seq_id], -s.last_used))
    if shared[slot.seq_id] < MIN_SHARED_PREFIX:
        slot = min(idle, key=lambda s: s.last_used)
    donor = max(slots, key=lambda s: (shared[s.seq_id], s is slot))
    return slot, donor


class Sequence:
    """One request being answered in a slot."""

    def __init__(
        self,
        request: ChatRequest,
        slot: Slot,
        *,
        n_prompt: int,
        cached: int,
        max_new: int,
        on_text: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        self.request = request
        self.slot = slot
        self.n_prompt = n_prompt
        self.cached = cached  # prompt tokens found in the KV cache, not computed again
        self.max_new = max_new
        self.on_text = on_text
        self.stop = stop
        self.pending: list[int] = []  # tokens to feed next: the rest of the prompt, then each sampled token
        self.prompt_left = 0  # how many of `pending` are prompt tokens
        self.generated: list[int] = []
        self.matcher: Any = None
        self.bitmask: Any = None
        self.prose_only = False
        self.calls_freely = False  # may write tool calls as text: a copy of one it wrote ends the answer
        self.cut_text: str | None = None  # the answer, when it ended before a repeated call
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.finish: Literal["stop", "length"] = "length"
        self.result: Generation | None = None  # set when finished; None when stopped


class LlamaEngine:
    """A GGUF model in llama.cpp, with `parallel` slots decoded together."""

    def __init__(self, path: Path, *, threads: int, parallel: int, max_context: int) -> None:
        import llama_cpp
        import xgrammar as xgr
        from llama_cpp import _internals
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp logs every load and context to stderr otherwise
        llama_cpp.llama_backend_init()
        self.llama = llama_cpp
        self.xgr = xgr
        self.max_context = max_context
        self._model = _internals.LlamaModel(
            path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False
        )
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = parallel * max_context
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = parallel
        # A KV cache per slot, not one pool: in a pool every step attends over every slot's cells, masked,
        # and an answer decoded 25% slower with 6,000 tokens cached in other slots; apart, an answer is
        # the same whatever the other slots hold. The price: a step of 4 short answers gave 1.35x the
        # tokens of one, against 1.55x in a pool (2-core AMD EPYC with AVX-512).
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = threads
        self._context = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        self.ctx = self._context.ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = self._model.vocab
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        # Each token's bytes as text (control tokens are empty): for streaming and for xgrammar.
        self.pieces = [self._piece(i) for i in range(self.n_vocab)]
        self.stop_ids = {i for i in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, i)}
        template = llama_cpp.llama_model_chat_template(self._model.model, None)
        if not template:
            raise WeightsError(f"'{path}' has no chat template in its metadata: llmos needs one to build prompts.")
        self.apply_template = chat_format.jinja_template(template.decode("utf-8"))
        info = xgr.TokenizerInfo(
            self.pieces, xgr.VocabType.RAW, vocab_size=self.n_vocab, stop_token_ids=sorted(self.stop_ids)
        )
        self.compiler = xgr.GrammarCompiler(info, max_threads=threads)
        self._grammars: dict[str, Any] = {}
        self._markup_ids: np.ndarray | None = None
        # A prose-only answer never opens a tool call, even after its first word.
        self._tool_call_open = self.tokenize(chat_format.TOOL_CALL_OPEN, special=True)[:1]
        self.slots = [Slot(i) for i in range(parallel)]
        self._batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        self._clock = 0
        self.rng = np.random.default_rng()
        self.prompt_tokens_computed = 0  # counters over the engine's life: prefix reuse shows in them
        self.prompt_tokens_cached = 0

    def close(self) -> None:
        """Free the batch, the context and the weights."""
        if self._batch is not None:
            self.llama.llama_batch_free(self._batch)
            self._batch = None
        self._context.close()
        self._model.close()

    # --- tokens --------------------------------------------------------------------

    def _piece(self, token: int) -> bytes:
        buffer = ctypes.create_string_buffer(64)
        n = self.llama.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
        if n < 0:  # longer than the buffer: -n is the size it needs
            buffer = ctypes.create_string_buffer(-n)
            n = self.llama.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[:n]

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        """Token ids of `text`; with `special`, markers such as <|im_start|> are read as their tokens."""
        data = text.encode("utf-8")
        size = len(data) + 8
        while True:
            out = (self.llama.llama_token * size)()
            n = self.llama.llama_tokenize(self.vocab, data, len(data), out, size, False, special)
            if n >= 0:
                return list(out[:n])
            size = -n

    # --- requests --------------------------------------------------------------------

    @property
    def has_free_slot(self) -> bool:
        return any(s.sequence is None for s in self.slots)

    @property
    def busy(self) -> bool:
        return any(s.sequence is not None for s in self.slots)

    def start(
        self,
        request: ChatRequest,
        *,
        default_max_tokens: int,
        on_text: Callable[[str], None],
        stop: threading.Event,
        prefill_only: bool = False,
    ) -> Sequence:
        """Place a request in a free slot (the caller checks `has_free_slot`); `step` then answers it.

        With `prefill_only` the prompt is read into the slot's cache and nothing is generated.
        """
        prompt = self.tokenize(chat_format.render(request, self.apply_template), special=True)
        n_prompt = len(prompt)
        if n_prompt >= self.max_context:
            raise PromptError(
                f"The prompt is {n_prompt} tokens, but this model's context holds {self.max_context} "
                f"(leaving room to answer). Shorten the conversation or the documents in it, "
                f"or raise max_context if the model supports more."
            )
        max_new = 0 if prefill_only else min(request.max_tokens or default_max_tokens, self.max_context - n_prompt)
        slot, donor = choose_slot(self.slots, prompt)
        keep = self._reuse(slot, donor, prompt)
        sequence = Sequence(
            request, slot, n_prompt=n_prompt, cached=keep, max_new=max_new, on_text=on_text, stop=stop
        )
        sequence.pending = prompt[keep:]
        sequence.prompt_left = len(sequence.pending)
        self.prompt_tokens_cached += keep
        schema = None if prefill_only else chat_format.constraint_schema(request)
        if schema is not None:
            sequence.matcher = self.xgr.GrammarMatcher(self._grammar(schema), terminate_without_stop_token=True)
            sequence.bitmask = self.xgr.allocate_token_bitmask(1, self.n_vocab)
            forced = self._jump_forward(sequence.matcher)
            sequence.generated += forced
            sequence.pending += forced
        # Tools given but not to be called: no tool call, and the first token may not open JSON, a fence or a tag.
        sequence.prose_only = schema is None and bool(request.tools) and request.tool_choice == "none"
        sequence.calls_freely = chat_format.may_call_freely(request)
        slot.sequence = sequence
        return sequence

    def _reuse(self, slot: Slot, donor: Slot, prompt: list[int]) -> int:
        """Make `slot` hold the longest cached prefix of the prompt; returns its length.

        At least one prompt token is left to compute: its logits give the first answer token.
        """
        llama, mem, most = self.llama, self.memory, len(prompt) - 1
        keep = min(common_prefix(slot.tokens, prompt), most)
        shared = min(common_prefix(donor.tokens, prompt), most)
        if donor is not slot and shared > keep:
            llama.llama_memory_seq_rm(mem, slot.seq_id, -1, -1)
            # Slots' caches are apart: llama.cpp copies a whole one; the tail goes below.
            llama.llama_memory_seq_cp(mem, donor.seq_id, slot.seq_id, -1, -1)
            slot.tokens = donor.tokens[:]
            keep = shared
        if not llama.llama_memory_seq_rm(mem, slot.seq_id, keep, -1):
            llama.llama_memory_seq_rm(mem, slot.seq_id, -1, -1)  # a whole sequence always goes
            keep = 0
        del slot.tokens[keep:]
        return keep

    def _grammar(self, schema: dict[str, Any]) -> Any:
        text = json.dumps(schema)  # keeps property order: the grammar writes properties in this order
        if text not in self._grammars:
            # As in the transformers engine: one line, no free whitespace for a weak model to fill forever.
            self._grammars[text] = self.compiler.compile_json_schema(text, any_whitespace=False)
        return self._grammars[text]

    def _jump_forward(self, matcher: Any) -> list[int]:
        """Tokens the grammar forces next (`{"name": "`, a named tool's name...): fed in one step."""
        text = matcher.find_jump_forward_string()
        if not text or not matcher.accept_string(text):
            return []
        return self.tokenize(text, special=False)

    # --- decoding ----------------------------------------------------------------------

    def step(self) -> list[Sequence]:
        """Feed one batch to the model and sample where it gives logits. Returns the sequences that ended
        (finished, with `result` set, or stopped by their flag, with `result` None)."""
        ended = []
        for slot in self.slots:
            if slot.sequence is not None and slot.sequence.stop.is_set():
                ended.append(self._release(slot.sequence))
        active = [s.sequence for s in self.slots if s.sequence is not None]
        if not active:
            return ended
        # Answers in progress first (a token or a few each), then prompt pieces in what room is left.
        active.sort(key=lambda q: len(q.pending))
        batch, room, n = self._batch, BATCH_TOKENS, 0
        fed: list[tuple[Sequence, list[int], int | None]] = []
        for sequence in active:
            if room == 0:
                break
            take = sequence.pending[:room]
            position = len(sequence.slot.tokens)
            for j, token in enumerate(take):
                batch.token[n + j] = token
                batch.pos[n + j] = position + j
                batch.n_seq_id[n + j] = 1
                batch.seq_id[n + j][0] = sequence.slot.seq_id
                batch.logits[n + j] = 0
            n += len(take)
            room -= len(take)
            last = None
            if len(take) == len(sequence.pending) and sequence.max_new > 0:  # its next token comes out
                batch.logits[n - 1] = 1
                last = n - 1
            fed.append((sequence, take, last))
        batch.n_tokens = n
        code = self.llama.llama_decode(self.ctx, batch)
        if code != 0:
            raise ModelError(f"llama.cpp could not decode a batch of {n} tokens (code {code}).")
        for sequence, take, last in fed:
            sequence.slot.tokens += take
            del sequence.pending[: len(take)]
            from_prompt = min(len(take), sequence.prompt_left)
            sequence.prompt_left -= from_prompt
            self.prompt_tokens_computed += from_prompt
            if sequence.max_new == 0 and not sequence.pending:  # a prefill: its prompt is in the cache
                sequence.result = self._result(sequence)
                ended.append(self._release(sequence))
            elif last is not None:
                logits = np.ctypeslib.as_array(self.llama.llama_get_logits_ith(self.ctx, last), shape=(self.n_vocab,))
                if self._accept(sequence, self._sample(sequence, logits)):
                    sequence.result = self._result(sequence)
                    ended.append(self._release(sequence))
        return ended

    def _sample(self, sequence: Sequence, logits: np.ndarray) -> int:
        if sequence.matcher is not None:
            sequence.matcher.fill_next_token_bitmask(sequence.bitmask)
            logits = np.where(allowed_tokens(sequence.bitmask.numpy(), self.n_vocab), logits, -np.inf)
        elif sequence.prose_only:
            logits = logits.copy()
            logits[self._tool_call_open] = -np.inf
            if not sequence.generated:
                logits[self._markup_starts()] = -np.inf
        temperature = sequence.request.temperature
        if temperature <= 0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / temperature
        probs = np.exp(scaled - scaled.max())
        return int(self.rng.choice(self.n_vocab, p=probs / probs.sum()))

    def _accept(self, sequence: Sequence, token: int) -> bool:
        """Take a sampled token; True when the answer is complete."""
        matcher = sequence.matcher
        if matcher is None:
            if token in self.stop_ids:
                sequence.finish = "stop"
                return True
            sequence.generated.append(token)
            if text := sequence.decoder.decode(self.pieces[token]):  # holds a partial UTF-8 character back
                sequence.on_text(text)
            sequence.pending = [token]
            if sequence.calls_freely and b"\n" in self.pieces[token]:
                sequence.cut_text = chat_format.before_repeated_call(self._text(sequence))
                if sequence.cut_text is not None:
                    sequence.finish = "stop"
                    return True
        else:
            sequence.generated.append(token)
            matcher.accept_token(token)
            sequence.pending = [token]
            if not matcher.is_terminated():
                forced = self._jump_forward(matcher)
                sequence.generated += forced
                sequence.pending += forced
            if matcher.is_terminated():
                sequence.finish = "stop"
                return True
        return len(sequence.generated) >= sequence.max_new

    def _result(self, sequence: Sequence) -> Generation:
        if sequence.matcher is None:
            if rest := sequence.decoder.decode(b"", final=True):
                sequence.on_text(rest)
        text = self._text(sequence) if sequence.cut_text is None else sequence.cut_text
        # The stop token counts as produced, as OpenAI-compatible servers count it.
        extra = 1 if sequence.finish == "stop" and sequence.matcher is None and sequence.cut_text is None else 0
        usage = Usage(prompt_tokens=sequence.n_prompt, completion_tokens=len(sequence.generated) + extra)
        return Generation(text, usage, sequence.finish)

    def _text(self, sequence: Sequence) -> str:
        return b"".join(self.pieces[t] for t in sequence.generated).decode("utf-8", errors="replace")

    def _release(self, sequence: Sequence) -> Sequence:
        """Free the slot; its KV cache stays, for the next request that shares its prefix."""
        self._clock += 1
        sequence.slot.last_used = self._clock
        sequence.slot.sequence = None
        return sequence

    def reset(self) -> None:
        """Forget every slot's cache (after a failed decode, whose state is unknown)."""
        self.llama.llama_memory_clear(self.memory, True)
        for slot in self.slots:
            slot.tokens, slot.sequence = [], None

    def _markup_starts(self) -> np.ndarray:
        """Ids of tokens whose text starts with `{`, `[`, `<` or a backtick, once whitespace is stripped."""
        if self._markup_ids is None:
            starts = (b"{", b"[", b"<", b"`")
            self._markup_ids = np.array([i for i, p in enumerate(self.pieces) if p.strip()[:1] in starts], dtype=np.int64)
        return self._markup_ids
