"""Generation engines: replies to rendered prompts from a base model, with a task's adapter when one is given.

Everything that generates goes through here: step 4 scoring candidates, step 6 scoring base models and adapters, the
export of a promoted adapter (`finetune/export.py`), and a gateway answering one request at a time:

    engine = load_engine(checkpoint, adapter_folder, EngineConfig(), cache=settings.engines_dir)
    prompt = prompt_text(engine.tokenizer, InputRule.from_dict(manifest["input"]).prepare(call))  # finetune.prompts
    reply = engine.generate([prompt], max_new_tokens=128).texts[0]

`adapter_folder` is a version folder of the registry (`SLM_HOME/adapters/<task>/v<N>`) or the `adapter/` of an
exported task (`SLM_HOME/serving/<task>`); None serves the base model. Replies are greedy, stop at the model's end of
turn, and come back in the order of the prompts, whatever the engine batches together.

Engines (`EngineConfig.engine`, chosen by measurement in `bench/engines.py`):
- `transformers`, the default and the reference: the adapter merged into the weights, bf16 where the hardware
  computes it; twice CTranslate2's speed on batches on a CPU with bf16 units. It also serves where CTranslate2
  cannot load a model (an architecture its converter does not know).
- `ctranslate2`: the adapter is merged into the base weights and the merged model converted once to a CTranslate2
  model quantized to `compute_type` (int8), kept under `cache` by the hashes of base and adapter, so a task's model
  is converted once and loads in well under a second after that; one request at a time it answers a little faster.

An engine is made for one process: a CTranslate2 generator runs one batch at a time (its `intra_threads` cores),
so a server calls `generate` from one worker per engine, or queues requests into batches.

A structured reply follows its JSON schema (`schemas`, `finetune.constrained`): transformers decodes under it with
an llguidance logits processor; CTranslate2, which has no hook for it, answers first, and a reply that does not
follow its schema is answered again under it on transformers.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import ctranslate2
from ctranslate2.converters import TransformersConverter
from peft import PeftModel
from transformers import GenerationConfig, PreTrainedTokenizerBase

from finetune.constrained import conforms
from finetune.generate import BATCH_SIZE, BATCH_TOKENS, Generated, SharedStart, batches, generate
from finetune.models import base_model_sha256, file_sha256, load_base, load_for_inference, load_tokenizer
from pipeline.settings import EngineConfig

ENGINES = ("ctranslate2", "transformers")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# The shared start of a task's prompts is read once, in whole steps of this many tokens: a prefix that shrinks by a
# few tokens (a second customer whose name starts like the first's) keeps the state CTranslate2 has cached.
SHARED_PREFIX_STEP = 64


class Engine(Protocol):
    """What serves a base model, or a base model with one task's adapter."""

    name: str  # one of ENGINES
    tokenizer: PreTrainedTokenizerBase  # renders the prompts (finetune.prompts.prompt_text) and counts tokens

    def generate(self, prompts: list[str], max_new_tokens: int, schemas: list[dict | None] | None = None) -> Generated:
        """Greedy replies to `prompts`, rendered with the chat template, in their order; a prompt given a JSON schema
        in `schemas` (`finetune.constrained.reply_schema`) gets a reply that follows it."""
        ...


# (checkpoint, adapter folder or None) -> Engine: what steps 4 and 6 are given to generate with
EngineLoader = Callable[[Path, Path | None], "Engine"]


def load_engine(checkpoint: Path, adapter: Path | None, config: EngineConfig, cache: Path) -> Engine:
    """The base model at `checkpoint` (a transformers checkpoint), with `adapter` (a peft adapter folder) merged in
    when given, on the engine `config` names; converted models are kept under `cache`. `engine.name` says which
    engine serves it: transformers where CTranslate2 cannot."""
    folder = converted_model(checkpoint, adapter, config, cache)
    if folder is None:
        return TransformersEngine.configured(checkpoint, adapter, config)
    return CTranslate2Engine(folder, config.threads,
                             reference=lambda: TransformersEngine.configured(checkpoint, adapter, config))


def converted_model(checkpoint: Path, adapter: Path | None, config: EngineConfig, cache: Path) -> Path | None:
    """The folder of the model converted for `config.engine`; None where transformers serves the checkpoint as it
    is: the transformers engine, or a model CTranslate2 cannot convert (with a warning)."""
    if config.engine not in ENGINES:
        raise ValueError(f"serving engine {config.engine!r}: expected one of {', '.join(ENGINES)}")
    if config.engine == "transformers":
        return None
    try:
        return ctranslate2_model(checkpoint, adapter, config.compute_type, cache)
    except (ValueError, NotImplementedError) as error:  # the converter's word for an architecture it lacks
        logging.getLogger(__name__).warning(f"{checkpoint.name}: CTranslate2 cannot convert it ({error}); "
                                            "generating with transformers")
        return None


class TransformersEngine:
    """transformers' batched `generate`, the adapter merged into the weights: the reference the others match."""

    name = "transformers"

    def __init__(self, checkpoint: Path, adapter: Path | None = None, prompt_lookup: int = 0, forced_ahead: bool = False,
                 shared_start: bool = False):
        self.model = load_for_inference(checkpoint, adapter)
        self.tokenizer = load_tokenizer(checkpoint)
        self.prompt_lookup = prompt_lookup  # draft tokens per step for a prompt answered alone (`generate`)
        self.forced_ahead = forced_ahead  # a structured reply answered alone: forced tokens read in the model's steps
        self.shared = SharedStart() if shared_start else None  # the prompts' shared start and its state, read once

    @classmethod
    def configured(cls, checkpoint: Path, adapter: Path | None, config: EngineConfig) -> TransformersEngine:
        """The engine with `config`'s ways of answering a prompt alone and of reading a shared start."""
        return cls(checkpoint, adapter, config.prompt_lookup, config.forced_ahead, config.shared_start)

    def generate(self, prompts: list[str], max_new_tokens: int, schemas: list[dict | None] | None = None) -> Generated:
        return generate(self.model, self.tokenizer, prompts, max_new_tokens, schemas=schemas,
                        prompt_lookup=self.prompt_lookup, forced_ahead=self.forced_ahead, shared=self.shared)


class CTranslate2Engine:
    """A converted CTranslate2 model (`ctranslate2_model`), with the tokenizer and end-of-turn tokens saved beside
    it, so the folder alone serves the task. CTranslate2 has no hook to constrain its decoding: a reply that does
    not follow its schema is generated again under it by `reference` (the same model on transformers, loaded on
    first need), so every structured reply follows its schema, and the fast path serves the rest.

    A task's prompts start alike (the agent's policy, every tool's schema): the tokens that every prompt read so far
    began with are given as CTranslate2's static prompt, whose model state it computes once and keeps, so each
    request reads only what is its own."""

    name = "ctranslate2"

    def __init__(self, folder: Path, threads: int = 0, reference: Callable[[], TransformersEngine] | None = None):
        self.folder = folder
        self._reference, self._loaded = reference, None
        self.generator = ctranslate2.Generator(str(folder), device="cpu", intra_threads=threads)
        self.tokenizer = load_tokenizer(folder)
        stop = GenerationConfig.from_pretrained(folder).eos_token_id
        self.end_tokens = sorted({*(stop if isinstance(stop, list) else [stop]), self.tokenizer.eos_token_id} - {None})
        self._start = SharedStart()  # the tokens every prompt read so far began with
        self.shared_tokens = 0  # how many of the last prompts' tokens were the cached static prompt

    def generate(self, prompts: list[str], max_new_tokens: int, schemas: list[dict | None] | None = None) -> Generated:
        generated = self._generate(prompts, max_new_tokens)
        astray = [i for i, text in enumerate(generated.texts) if schemas and not conforms(text, schemas[i])]
        if not astray or self._reference is None:
            return generated
        self._loaded = self._loaded or self._reference()
        again = self._loaded.generate([prompts[i] for i in astray], max_new_tokens, [schemas[i] for i in astray])
        texts = list(generated.texts)
        for i, text in zip(astray, again.texts):
            texts[i] = text
        return Generated(texts, generated.seconds + again.seconds, generated.new_tokens + again.new_tokens)

    def _generate(self, prompts: list[str], max_new_tokens: int) -> Generated:
        started = time.perf_counter()
        ids = self.tokenizer(prompts, add_special_tokens=False).input_ids
        tokens = [self.tokenizer.convert_ids_to_tokens(i) for i in ids]
        shared = self._shared_prefix(tokens)
        self.shared_tokens = len(shared)
        replies: dict[int, list[int]] = {}
        # the same batches as the reference: prompts of similar length together, a bound on the padded tokens
        for batch in batches([len(i) for i in ids], max_new_tokens, BATCH_SIZE, BATCH_TOKENS):
            results = self.generator.generate_batch(
                [tokens[i][len(shared):] for i in batch],
                static_prompt=shared or None,
                max_length=max_new_tokens,
                sampling_topk=1,
                end_token=self.end_tokens,
                include_prompt_in_result=False,  # the prompt is read at once, not stepped through token by token
            )
            for i, result in zip(batch, results):
                replies[i] = result.sequences_ids[0]
        texts = [self.tokenizer.decode(replies[i], skip_special_tokens=True).strip() for i in range(len(prompts))]
        return Generated(texts, time.perf_counter() - started, sum(len(r) for r in replies.values()))

    def _shared_prefix(self, prompts: list[list[str]]) -> list[str]:
        """The static prompt for `prompts`: the whole steps of tokens that they and every earlier prompt began with
        (`SharedStart`)."""
        return prompts[0][:self._start.length(prompts) // SHARED_PREFIX_STEP * SHARED_PREFIX_STEP]


def ctranslate2_model(checkpoint: Path, adapter: Path | None, compute_type: str, cache: Path) -> Path:
    """The base model with `adapter` merged in, converted to CTranslate2 weights in `compute_type`, with its
    tokenizer and generation config: converted on first use, then found under `cache` by what it was made of."""
    made_of = {
        "base_sha256": base_model_sha256(checkpoint),
        "adapter_sha256": file_sha256(adapter / ADAPTER_WEIGHTS) if adapter else "",
        "compute_type": compute_type,
        "ctranslate2": ctranslate2.__version__,
    }
    key = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:16]
    target = cache / "ctranslate2" / key
    if (target / "model.bin").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # this run's own folder: runs that convert the same model at once never write the same path
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    with tempfile.TemporaryDirectory(dir=target.parent) as merged:
        model, tokenizer = load_base(checkpoint)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        model.save_pretrained(merged)
        tokenizer.save_pretrained(merged)
        del model
        TransformersConverter(merged).convert(str(staging), quantization=compute_type, force=True)
        tokenizer.save_pretrained(staging)
        GenerationConfig.from_pretrained(merged).save_pretrained(staging)
    (staging / "made_of.json").write_text(json.dumps(made_of, indent=2))
    staging.chmod(0o755)  # mkdtemp's is owner-only; every worker reads the model
    try:
        staging.rename(target)  # a half-converted model is never mistaken for one
    except OSError as error:
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        shutil.rmtree(staging)  # another run converted it first: the same model
    return target
