"""Fine-tuning the local model on a company's own dialogues: LoRA adapters (PEFT), trained on CPU.

    llmos finetune support.csv --name support-lora --question-column instruction --answer-column response
    llmos ask "Where is my refund?" --model qwen2.5-coder-0.5b+support-lora
    llmos eval dialogue --adapter support-lora support.csv --out eval.json

In Python: `read_dialogues`, `finetune` (returns the adapter's `AdapterManifest`),
`evaluate_dialogue`. Torch, transformers and PEFT are imported only when a run starts.
"""

from llmos.finetune.adapters import AdapterManifest, adapters_home, list_adapters, locate, read_manifest
from llmos.finetune.data import Dialogues, Turn, read_dialogues
from llmos.finetune.encoding import IGNORE, Example, encode, encode_chat
from llmos.finetune.settings import FinetuneSettings
from llmos.finetune.training import Reporter, finetune

__all__ = [
    "IGNORE", "AdapterManifest", "Dialogues", "Example", "FinetuneSettings", "Reporter", "Turn",
    "adapters_home", "encode", "encode_chat", "finetune", "list_adapters", "locate", "read_dialogues", "read_manifest",
]
