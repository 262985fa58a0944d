"""What a fine-tuning run is made of: the data's columns, the LoRA shape, the schedule.

The defaults are measured (bench/finetune.py): on 2 idle CPU cores a run of the 0.5B
model takes about 10 minutes, validation included (20 steps of 8 chats, about 28,000
tokens at some 64 tokens/s), and brings the validation perplexity of support dialogues
from 4.81 to 2.53 (ratio 0.525).
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BASE = "qwen2.5-coder-0.5b"
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]


class FinetuneSettings(BaseModel):
    """Every argument that changes what a run learns; a run resumes only with the same ones."""

    model_config = ConfigDict(extra="forbid")

    base: str = Field(DEFAULT_BASE, description="The base model: a catalog name or a transformers model folder.")
    # The data's shape (llmos.finetune.data.read_dialogues).
    question_column: str = "question"
    answer_column: str = "answer"
    messages_column: str = "messages"
    system: str | None = Field(None, description="A system message put first in every chat that has none.")
    # LoRA (PEFT).
    rank: int = Field(16, ge=1, le=256)
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator: the update is scaled by alpha / rank.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ATTENTION + MLP)
    top_layers: int | None = Field(
        12, ge=1, description="Adapt only the last N decoder layers (backward then stops early); None: all."
    )
    # Schedule.
    max_length: int = Field(256, ge=16, description="Tokens per chat; longer chats are cut.")
    steps: int = Field(20, ge=1, description="Optimizer steps.")
    batch_size: int = Field(4, ge=1, description="Chats per forward pass.")
    grad_accumulation: int = Field(2, ge=1, description="Forward passes per optimizer step.")
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(2, ge=0)
    validation: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the chats held out (0: none).")
    max_validation: int = Field(32, ge=0, description="At most this many held-out chats (evaluation time).")
    seed: int = 0
    dtype: str = Field(
        "float32",
        description="float32 or bfloat16. Training defaults to float32: measured on an AVX512-BF16 CPU (2 cores), "
        "a bf16 backward pass ran 4-7x slower than float32, unlike inference.",
    )

    @property
    def chats_per_step(self) -> int:
        return self.batch_size * self.grad_accumulation

    def fingerprint(self, *, data_sha256: str, base_sha256: str) -> str:
        """Identifies a run: same settings, data and base weights give the same fingerprint."""
        payload = json.dumps({"settings": self.model_dump(), "data": data_sha256, "base": base_sha256}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()
