"""Checks of an ``hf:`` model directory before transformers loads it, each a one-line ValueError naming the file:
a causal-LM architecture, positive sizes in config.json, whole safetensors files (header, length), embeddings of
the configured vocabulary and width, and a tokenizer whose token ids fit that vocabulary."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from opo_theory.io import read_json
from opo_theory.validation import show

SIZE_KEYS = ("vocab_size", "hidden_size", "n_embd", "num_hidden_layers", "n_layer", "num_attention_heads", "n_head",
             "max_position_embeddings", "n_positions")
EMBEDDINGS = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")     # transformers' names of causal LM heads


def transformers_module():
    """The transformers module, quiet (no progress bars, errors only); a one-line error when it is missing."""
    try:
        import transformers
    except ImportError:
        raise ValueError("an 'hf:' model needs the optional transformers dependency: "
                         "pip install -e '.[hf]'") from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers


def check_hf_dir(path: Path) -> None:
    """Everything ``load_hf_policy`` needs from ``path`` that can be checked without building the model."""
    path = Path(path)
    config = read_json(path / "config.json", "a transformers model config")
    if not isinstance(config, dict):
        raise ValueError(f"{path / 'config.json'} is not a JSON object: not a transformers config")
    check_architecture(path, config)
    for key in SIZE_KEYS:
        value = config.get(key)
        if key in config and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{path / 'config.json'}: {key} must be a positive integer, got {show(value)}")
    headers = safetensors_headers(path)
    for key in ("num_hidden_layers", "n_layer"):
        if config.get(key, 0) > max(len(headers), 1):
            raise ValueError(f"{path / 'config.json'}: {key} = {config[key]} but the weights hold only {len(headers)} "
                             "tensors: weights and config do not belong together")
    check_embeddings(path, config, headers)
    check_tokenizer(path, config)
    if headers:
        check_shapes(path, headers)
    check_tokenizer_loads(path)


def check_architecture(path: Path, config: dict) -> None:
    """config.json names a causal LM (architectures ``*ForCausalLM`` or ``*LMHeadModel``)."""
    archs = config.get("architectures")
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise ValueError(f"{path / 'config.json'}: 'architectures' must list the model class, got {show(archs)}")
    if not any(a.endswith(CAUSAL_SUFFIXES) for a in archs):
        raise ValueError(f"{path / 'config.json'}: {', '.join(archs)} is not a causal language model (the policy "
                         f"must be a *ForCausalLM or *LMHeadModel)")


def safetensors_headers(path: Path) -> dict[str, dict]:
    """{tensor name: its header entry} over the directory's safetensors files, each file checked whole."""
    index = path / "model.safetensors.index.json"
    if index.exists():
        weight_map = read_json(index, "a safetensors index").get("weight_map", {})
        files = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
        if not files:
            raise ValueError(f"{index} maps no tensors to files: the file is damaged")
    else:
        files = [p.name for p in sorted(path.glob("*.safetensors"))]
    headers: dict[str, dict] = {}
    for name in files:
        headers.update(safetensors_header(path / name))
    return headers


def safetensors_header(file: Path) -> dict[str, dict]:
    """The tensor entries of one safetensors file, once its header parses and its length is the one the header
    implies (a truncated, padded or overwritten file is refused)."""
    if not file.is_file():
        raise ValueError(f"{file} is missing (named by the safetensors index)")
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        text = fh.read(n) if 0 < n <= min(size - 8, 100_000_000) else b""
    try:
        header = json.loads(text)
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        raise ValueError(f"{file} is not a safetensors file (its header does not parse): damaged or random bytes")\
            from None
    if size != 8 + n + end:
        raise ValueError(f"{file} holds {size} bytes, its header describes {8 + n + end}: the file is truncated or "
                         "damaged")
    return tensors


def check_embeddings(path: Path, config: dict, headers: dict[str, dict]) -> None:
    """The input embedding's shape is [vocab_size, hidden width] of config.json."""
    name = next((k for k in headers if k.endswith(EMBEDDINGS)), None)
    if name is None:
        return
    shape = headers[name].get("shape")
    width = config.get("hidden_size", config.get("n_embd"))
    want = [config.get("vocab_size"), width]
    if want[0] is not None and width is not None and shape != want:
        raise ValueError(f"{path}: the weights' {name} has shape {shape}, config.json says vocab_size x width = "
                         f"{want}: weights and config do not belong together")


def check_shapes(path: Path, headers: dict[str, dict]) -> None:
    """Every tensor the config's model has is in the weights with its shape (the model is built on the meta
    device: no memory); a missing tensor would be initialised at random by transformers, a wrong one fail late."""
    import torch


    tf = transformers_module()
    try:
        config = tf.AutoConfig.from_pretrained(path, local_files_only=True)
        with torch.device("meta"):
            model = tf.AutoModelForCausalLM.from_config(config)
    except Exception as exc:        # noqa: BLE001 -- transformers raises many kinds for a config it cannot build
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ValueError(f"{path / 'config.json'} does not describe a model transformers can build "
                         f"({type(exc).__name__}: {first})") from None
    tied = set(getattr(model, "_tied_weights_keys", None) or []) if getattr(config, "tie_word_embeddings", False) else set()
    for name, tensor in model.state_dict().items():
        entry = headers.get(name)
        if entry is None:
            if name not in tied and not name.endswith("lm_head.weight"):
                raise ValueError(f"{path}: the weights lack {name}, which config.json's model has: weights and config "
                                 "do not belong together")
        elif list(entry.get("shape", [])) != list(tensor.shape):
            raise ValueError(f"{path}: the weights' {name} has shape {entry.get('shape')}, config.json's model "
                             f"{list(tensor.shape)}: weights and config do not belong together")


def check_tokenizer(path: Path, config: dict) -> None:
    """Every token id of tokenizer.json is below config.json's vocab_size (else an id indexes past the embedding)."""
    vocab_size = config.get("vocab_size")
    if not (path / "tokenizer.json").is_file() or vocab_size is None:
        return
    tok = read_json(path / "tokenizer.json", "a tokenizer")
    vocab = tok.get("model", {}).get("vocab", {}) if isinstance(tok, dict) else {}
    ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
    ids += [t.get("id", 0) for t in tok.get("added_tokens", []) if isinstance(t, dict)] if isinstance(tok, dict) else []
    top = max((i for i in ids if isinstance(i, int)), default=-1)
    if top >= vocab_size:
        raise ValueError(f"{path / 'tokenizer.json'} has token id {top}, beyond config.json's vocab_size {vocab_size}:"
                         " tokenizer and model do not belong together")


def check_tokenizer_loads(path: Path) -> None:
    """transformers reads the tokenizer files (a damaged tokenizer.json raises a bare Exception from the
    tokenizers library, a missing one a many-line ValueError: both become one line naming the directory)."""

    try:
        transformers_module().AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:        # noqa: BLE001 -- the tokenizers library raises plain Exception
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ValueError(f"{path}: its tokenizer files cannot be read ({type(exc).__name__}: {first})") from None
