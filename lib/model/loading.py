"""Loading models: short names, Hugging Face ids, local folders and embedded GGUF files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from layercollapse import settings
from layercollapse.model import embedded
from layercollapse.model.architectures import check_supported, set_readout
from layercollapse.progress import quiet_library_bars
from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    """A short model name: where its weights come from.

    Attributes:
        source: a Hugging Face Hub id, or an :class:`embedded.EmbeddedGGUF`.
        tokenizer: Hub id of the tokenizer when it differs (None: same as source).
        note: one line for the README and error messages.
        n_layers: its decoder layers, so that a stored result's key is known without loading the weights
            (:func:`model_depth`; the embedded models' are checked against the loaded models in the tests).
        architecture: its family as the site groups settings ("Qwen2", "Gemma-3", "Llama", ...; checked against
            the loaded embedded models' ``model_type`` in the tests).
    """

    source: str | embedded.EmbeddedGGUF
    note: str
    tokenizer: str | None = None
    n_layers: int | None = None
    architecture: str | None = None

    @property
    def is_embedded(self) -> bool:
        return isinstance(self.source, embedded.EmbeddedGGUF)


MODEL_REGISTRY: dict[str, ModelEntry] = {
    "smollm2-135m": ModelEntry(embedded.SMOLLM2, "SmolLM2-135M-Instruct, 30 layers, GGUF Q4_1 (embedded, fast)",
                               n_layers=30, architecture="Llama"),
    "gemma3-270m": ModelEntry(embedded.GEMMA3_270M, "Gemma-3-270M base, 18 layers, GGUF Q4_K_M (embedded)",
                              n_layers=18, architecture="Gemma-3"),
    "qwen2.5-coder-1.5b": ModelEntry(
        embedded.QWEN25_CODER_15B, "Qwen2.5-Coder-1.5B-Instruct, 28 layers, GGUF (embedded, strongest)", n_layers=28,
        architecture="Qwen2"),
    "llama2-7b": ModelEntry("meta-llama/Llama-2-7b-hf", "Llama-2-7B, 32 layers (Hub, gated)", n_layers=32,
                            architecture="Llama"),
    "llama3-8b": ModelEntry("meta-llama/Meta-Llama-3-8B", "Llama-3-8B, 32 layers (Hub, gated)", n_layers=32,
                            architecture="Llama"),
    "qwen3-4b": ModelEntry("Qwen/Qwen3-4B", "Qwen3-4B, 36 layers (Hub)", n_layers=36, architecture="Qwen3"),
    "mistral-7b": ModelEntry("mistralai/Mistral-7B-v0.1", "Mistral-7B-v0.1, 32 layers (Hub)", n_layers=32,
                             architecture="Mistral"),
}


def model_architecture(name: str) -> str:
    """The family a model's settings are grouped under (:attr:`ModelEntry.architecture`); a name the registry does not
    know is its own group."""
    entry = MODEL_REGISTRY.get(name)
    return entry.architecture if entry is not None and entry.architecture else name

EMBEDDED_MODELS = tuple(name for name, entry in MODEL_REGISTRY.items() if entry.is_embedded)


class UnknownModel(ValueError):
    """A model name that is neither a short name, a local folder nor a reachable Hub id."""


def cpu_supports_fast_bf16() -> bool:
    """True when this CPU has native bf16 matmul paths (AVX512-BF16 or AMX).

    On such CPUs bf16 ran 3.1x faster than fp32 for SmolLM2-135M scoring
    (benchmarks/dtype_cpu.py); elsewhere bf16 is emulated and slower.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    return capability in {"AVX512_BF16", "AMX"} or (
        capability == "AVX512" and _cpu_flags_have("avx512_bf16", "amx_bf16")
    )


def _cpu_flags_have(*flags: str) -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in text for flag in flags)


def default_device() -> torch.device:
    """CUDA when a GPU is present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on GPUs and on CPUs with native bf16, fp32 otherwise."""
    if torch.device(device).type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if cpu_supports_fast_bf16() else torch.float32


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return default_dtype(device)
    if isinstance(dtype, str):
        names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp32": torch.float32,
                 "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16}
        if dtype not in names:
            raise ValueError(f"Unknown dtype '{dtype}'; use one of {sorted(names)}")
        return names[dtype]
    return dtype


def describe_models() -> str:
    """One line per registered short name, for error messages and the CLI."""
    return "\n".join(f"  {name:<20} {entry.note}" for name, entry in MODEL_REGISTRY.items())


_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
_FOLDER_HINT = ("A model folder holds config.json, the weights (*.safetensors or *.bin) and the tokenizer files, "
                "as written by save_pretrained() or `hf download <owner/name> --local-dir <folder>`; "
                "a GGUF model is one .gguf file (weights and tokenizer), passed as the file or a folder holding it.")


def looks_like_path(name: str) -> bool:
    """True for names that can only mean a folder: ./x, ../x, /x, ~/x, a/b/c (a Hub id is exactly owner/name)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _has_weights(folder: Path) -> bool:
    return any(next(folder.glob(pattern), None) for pattern in _WEIGHT_PATTERNS)


def local_gguf(name_or_path: str) -> Path | None:
    """The local GGUF file ``name_or_path`` means: itself when it is a ``.gguf`` file, or the one ``.gguf`` file of a
    folder without safetensors / bin weights; None when it means no GGUF file.

    Raises:
        UnknownModel: a folder holds several GGUF files and no other weights (it names them and asks for one).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path if path.suffix == ".gguf" else None
    if not path.is_dir() or _has_weights(path):
        return None
    found = sorted(path.glob("*.gguf"))
    if len(found) > 1:
        raise UnknownModel(f"Model folder '{path}' holds {len(found)} GGUF files ({', '.join(f.name for f in found)}): "
                           f"pass one of them, e.g. '{found[0]}'")
    return found[0] if found else None


def check_model_folder(folder: str | Path, *, needs_tokenizer: bool = True) -> None:
    """Raise :class:`UnknownModel` naming what a local model folder lacks (config, weights, tokenizer)."""
    folder = Path(folder)
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not _has_weights(folder):
        missing.append("weights (*.safetensors or *.bin)")
    if needs_tokenizer and not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        missing.append(f"tokenizer files ({', '.join(_TOKENIZER_FILES)})")
    if missing:
        what = "is not a model folder" if "config.json" in missing else "is an incomplete model folder"
        raise UnknownModel(f"Model folder '{folder}' {what}: it has no {' and no '.join(missing)}. {_FOLDER_HINT}")


def check_model_source(name_or_path: str, *, needs_tokenizer: bool = True) -> None:
    """Raise :class:`UnknownModel` unless ``name_or_path`` can name a model, checked without loading anything or
    reaching the Hub: a short name, a GGUF file (or a folder holding one), a whole model folder, or owner/name (a
    Hub id, checked when it loads)."""
    if name_or_path in MODEL_REGISTRY or local_gguf(name_or_path) is not None:
        return
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        check_model_folder(path, needs_tokenizer=needs_tokenizer)
    elif path.exists():
        raise UnknownModel(
            f"Model '{name_or_path}' is a file but not a GGUF file (*.gguf): pass a model folder (config.json, the "
            f"weights *.safetensors or *.bin, and the tokenizer files, as written by save_pretrained()), a .gguf file, "
            f"a Hugging Face Hub id (owner/name) or a short name ({', '.join(MODEL_REGISTRY)})")
    elif looks_like_path(name_or_path):
        raise UnknownModel(
            f"Model folder '{name_or_path}' does not exist. Pass an existing model folder, a .gguf file, "
            "a Hugging Face Hub id (owner/name) or a short name:\n" + describe_models()
        )
    elif "/" not in name_or_path:
        raise UnknownModel(
            f"Unknown model '{name_or_path}'. Known short names:\n{describe_models()}\n"
            "Or pass a Hugging Face Hub id (owner/name), a local folder or a .gguf file."
        )


def _hub_or_local(name_or_path: str, *, needs_tokenizer: bool = True) -> str:
    """Check that a Hub id or folder can be loaded; raise a helpful error otherwise."""
    check_model_source(name_or_path, needs_tokenizer=needs_tokenizer)
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return str(folder)
    offline = settings.hub_offline()
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(name_or_path, allow_patterns=["config.json"], local_files_only=offline)
    except Exception as error:  # noqa: BLE001 - re-raised with a clearer message
        where = "HF_HUB_OFFLINE is set and no local copy exists" if offline else "the Hub could not be reached"
        raise UnknownModel(
            f"Cannot load '{name_or_path}': {where} ({type(error).__name__}). "
            f"Offline alternatives: {', '.join(EMBEDDED_MODELS)} (embedded in PyPI packages), or a local folder."
        ) from error
    return name_or_path


def load_model(
    name_or_path: str,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    device_map: str | dict | None = None,
    readout: str = "float32",
) -> tuple[nn.Module, "object"]:
    """Load a causal LM and its tokenizer, ready for scoring.

    Args:
        name_or_path: a short name (see :data:`MODEL_REGISTRY`), a Hub id, a local folder, or a local GGUF file
            (``.gguf``, or a folder holding one and no other weights), loaded as the embedded models are.
        dtype: torch dtype or "bf16"/"fp32"; default bf16 on GPU and on CPUs with native bf16.
        device: default CUDA when available, else CPU.
        device_map: passed to transformers (e.g. "auto" to spread a large model over GPUs);
            default "auto" when the model's weights do not fit on one GPU.
        readout: precision after the last hidden state, "float32" (default) or "model"
            (:func:`layercollapse.model.architectures.set_readout`).
    Returns:
        (model in eval mode, tokenizer with left padding and a pad token).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = torch.device(device) if device is not None else default_device()
    dtype = resolve_dtype(dtype, device)
    entry = MODEL_REGISTRY.get(name_or_path)
    kwargs: dict = {"dtype": dtype}
    gguf = embedded.gguf_path(entry.source) if entry is not None and entry.is_embedded else local_gguf(name_or_path)
    if gguf is not None:
        folder, kwargs["gguf_file"] = str(gguf.parent), gguf.name
        kwargs["quantization_config"] = _dense_gguf_config()
        tokenizer_source = folder
    else:
        separate_tokenizer = bool(entry and entry.tokenizer)
        folder = _hub_or_local(entry.source if entry else name_or_path, needs_tokenizer=not separate_tokenizer)
        tokenizer_source = entry.tokenizer if separate_tokenizer else folder
        if device_map is None and device.type == "cuda":
            device_map = _auto_device_map_if_needed(folder)
    if device_map is not None:
        kwargs["device_map"] = device_map
    with quiet_library_bars():
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source,
                                                  **({"gguf_file": kwargs["gguf_file"]} if "gguf_file" in kwargs else {}))
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    check_supported(model)
    set_readout(model, readout)
    if device_map is None:
        model.to(device)
    model.eval()
    prepare_tokenizer_(tokenizer)
    model.layercollapse_name = name_or_path
    return model, tokenizer


def _dense_gguf_config():
    """Unpack GGUF weights into plain ``nn.Linear`` layers in the requested dtype.

    Layer views, hooks and the numerics tests rely on ordinary Linears, and the loaded model must not
    depend on whether the optional ``kernels`` package happens to be installed (with it, transformers
    would keep the weights packed and compute every matmul in float32). Asking for this explicitly
    also avoids transformers' warning that a packed bf16 model casts every matmul, which does not
    apply to dense weights.
    """
    from transformers import GgufConfig

    return GgufConfig(dequantize=True)


def prepare_tokenizer_(tokenizer) -> None:
    """Left padding and a pad token (the EOS token when none is defined)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def _auto_device_map_if_needed(folder: str) -> str | None:
    """"auto" when the checkpoint is larger than 90% of the free memory of GPU 0."""
    try:
        from accelerate.utils import compute_module_sizes  # noqa: F401
        from huggingface_hub import get_safetensors_metadata

        metadata = get_safetensors_metadata(folder)
        n_params = sum(metadata.parameter_count.values())
    except Exception:  # noqa: BLE001 - size unknown: keep it on one device
        return None
    free, _ = torch.cuda.mem_get_info()
    return "auto" if n_params * 2 > 0.9 * free else None


def model_depth(name: str) -> int | None:
    """Decoder layers of a model, known without loading its weights: a short name's (:data:`MODEL_REGISTRY`), a local
    folder's ``config.json``, or a Hub id's config in the local Hugging Face cache (``num_hidden_layers``, or its
    ``text_config``'s); None when none of them says (then only the loaded model can)."""
    if name in MODEL_REGISTRY:
        return MODEL_REGISTRY[name].n_layers
    config = Path(name).expanduser() / "config.json"
    if not config.is_file() and "/" in name and not looks_like_path(name):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
        config = Path(cached) if isinstance(cached, str) else config
    if not config.is_file():
        return None
    values = json.loads(config.read_text())
    depth = values.get("num_hidden_layers") or values.get("text_config", {}).get("num_hidden_layers")
    return int(depth) if depth else None
