"""Generation engines on this CPU, on the demo's held-out prompts with the adapters the pipeline trained: the current
transformers path beside CTranslate2, llama.cpp and ONNX Runtime GenAI, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/engines.py [--home .slm] [--engines transformers,ctranslate2,...] \
        [--threads 2] [--requests 20] [--gemma-task task-002]

Needs an SLM_HOME where the demo's steps 1–5 ran (`make demo`): its warehouse and adapters. Engines that are not
installed are reported as such: llama.cpp needs `pip install llama-cpp-python` (it compiles llama.cpp from source),
ONNX Runtime GenAI `pip install onnxruntime-genai onnx onnx-ir`.

The workloads, all greedy:
- batched: every task's held-out sample as step 6 draws it (`decision.eval_sample` of demo/config.yaml), read
  through the task's newest adapter's input rule and answered by that adapter, bounded as step 6 bounds it (the
  task's p95 reply length, `pick.max_new_tokens`); each task's prompts go to the engine at once;
- single: one request at a time, --requests of the ticket-routing task's held-out calls as logged (about 300 prompt
  tokens, its adapter's tool call as the reply), at most 30 new tokens, under the tool call's schema where the
  engine takes one (transformers, CTranslate2), as the gateway asks: the gateway's case;
- Gemma-3-270M: an adapter trained here for --gemma-task (the demo picks SmolLM2 for every task), its held-out
  sample batched, so each engine shows whether it serves the second candidate.

Each engine runs in its own process, so its peak memory (VmHWM, the model included) is its own. Load is the median
time to make a task's engine ready once its model is converted (conversion, once per task, is timed apart).
Agreement is the share of replies identical to the reference's (transformers, the adapter merged, bf16 where the
CPU has it, one token per step), and the difference of the mean held-out score over the same replies.
`transformers+lookup`: the same, with a prompt answered alone drafting tokens from its own text
(`engine.prompt_lookup`); `transformers+forced`: that, and a structured reply answered alone fed the tokens its schema
forces in the model's steps (`engine.forced_ahead`); `transformers+shared`, the default engine as the pipeline and the
gateway run it: that, and the start that the prompts read so far shared read once, its model state kept
(`engine.shared_start`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `finetune` package, not this file

import numpy as np  # noqa: E402

from finetune.adapters import input_rule, train_task_adapter, versions  # noqa: E402
from finetune.candidates import load_candidates  # noqa: E402
from finetune.constrained import reply_schema  # noqa: E402
from finetune.engines import ADAPTER_WEIGHTS, CTranslate2Engine, TransformersEngine, ctranslate2_model  # noqa: E402
from finetune.evaluate import held_out_sample  # noqa: E402
from finetune.generate import Generated  # noqa: E402
from finetune.models import base_checkpoint, load_tokenizer  # noqa: E402
from finetune.prompts import adapter_examples, prompt_text, reply_kind, target_text, token_count  # noqa: E402
from pipeline.context import InputRule  # noqa: E402
from pipeline.metrics import score_replies  # noqa: E402
from pipeline.pick import split_by_time  # noqa: E402
from pipeline.settings import EngineConfig, Settings  # noqa: E402
from pipeline.warehouse import open_warehouse  # noqa: E402

BASELINE = "transformers"
SINGLE_TASK_REPLY = "tool:route_ticket"  # the gateway's case: a tool call of about 30 tokens
SINGLE_MAX_NEW_TOKENS = 30
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "demo" / "config.yaml"


# --- the workloads --------------------------------------------------------------------------------------------


def workloads(home: Path, requests: int, gemma_task: str, gemma_steps: int, only: list[str]) -> dict:
    """Prompts and bounds per task, rendered once here so every engine answers the same text."""
    settings = Settings.from_env({"SLM_HOME": str(home), "SLM_CONFIG": str(DEMO_CONFIG)})
    warehouse = open_warehouse(settings.warehouse)
    smollm2, gemma = load_candidates()
    checkpoint = base_checkpoint(smollm2, home)
    tokenizer = load_tokenizer(checkpoint)
    tasks, single = [], None
    for task_id in sorted(warehouse.read("tasks")["task_id"]):
        if not versions(settings.adapters_dir, task_id) or (only and task_id not in only):
            continue
        calls = warehouse.task_calls(task_id)
        train, sample, _ = held_out_sample(calls, np.zeros((len(calls), 1)), settings.pick, settings.decision.eval_sample)
        version = max(versions(settings.adapters_dir, task_id))
        rule = input_rule(settings.adapters_dir, task_id, version)
        p95 = np.percentile([token_count(tokenizer, target_text(c)) + 1 for c in train.to_dict("records")], 95)
        tasks.append({
            "task_id": task_id, "kind": reply_kind(sample[0]), "adapter": str(settings.adapters_dir / task_id / f"v{version}"),
            "max_new_tokens": min(int(p95), settings.pick.max_new_tokens),
            "prompts": [prompt_text(tokenizer, rule.prepare(c)) for c in sample],
            "references": [target_text(c) for c in sample],
        })
        if single is None and sample and _reply_type(sample[0]) == SINGLE_TASK_REPLY:
            held_out = split_by_time(calls, settings.pick.held_out_share)[1].to_dict("records")[:requests]
            logged = [prompt_text(tokenizer, InputRule(context=rule.context).prepare(c)) for c in held_out]
            single = {"task_id": task_id, "adapter": tasks[-1]["adapter"], "prompts": logged,
                      "schemas": [reply_schema(c, "tool") for c in held_out],
                      "prompt_tokens": statistics.median(token_count(tokenizer, p) for p in logged)}
    if not tasks:
        raise SystemExit(f"no adapters under {settings.adapters_dir}: run the demo's steps 1-5 first (make demo)")
    return {"checkpoint": str(checkpoint), "tasks": tasks, "single": single,
            "gemma": gemma_workload(settings, warehouse, gemma, gemma_task, gemma_steps) if gemma_task else None}


def gemma_workload(settings: Settings, warehouse, gemma, task_id: str, steps: int) -> dict:
    """The task's held-out sample for an adapter of Gemma-3-270M, trained here once (as step 5 would, for `steps`
    steps) and kept."""
    checkpoint = base_checkpoint(gemma, settings.home)
    tokenizer = load_tokenizer(checkpoint)
    root = settings.home / "bench" / "adapters"
    calls = warehouse.task_calls(task_id)
    train, sample, _ = held_out_sample(calls, np.zeros((len(calls), 1)), settings.pick, settings.decision.eval_sample)
    rule = input_rule(settings.adapters_dir, task_id, max(versions(settings.adapters_dir, task_id)))
    if not versions(root, task_id):
        print(f"training a Gemma-3-270M adapter for {task_id} (once)", flush=True)
        examples = adapter_examples(tokenizer, train.to_dict("records"), rule, settings.training.max_length)
        train_task_adapter(task_id, gemma.name, checkpoint, examples, rule, root,
                           replace(settings.training, min_steps=steps, max_steps=steps, max_tokens=0))
    p95 = np.percentile([token_count(tokenizer, target_text(c)) + 1 for c in train.to_dict("records")], 95)
    return {"checkpoint": str(checkpoint), "task_id": task_id, "kind": reply_kind(sample[0]),
            "adapter": str(root / task_id / f"v{max(versions(root, task_id))}"),
            "max_new_tokens": min(int(p95), settings.pick.max_new_tokens),
            "prompts": [prompt_text(tokenizer, rule.prepare(c)) for c in sample],
            "references": [target_text(c) for c in sample]}


def _reply_type(call: dict) -> str:
    from pipeline.tasks import reply_type

    return reply_type(call)


# --- the engines measured beside finetune.engines ----------------------------------------------------------------


class LlamaCppEngine:
    """llama.cpp through llama-cpp-python: the base as an f16 GGUF plus the adapter converted to a GGUF LoRA, both
    with llama.cpp's own scripts. One sequence at a time: its Python API decodes one sequence per context."""

    name = "llama.cpp"

    def __init__(self, checkpoint: Path, adapter: Path | None, work: Path, threads: int):
        from llama_cpp import Llama

        self.tokenizer = load_tokenizer(checkpoint)
        lora = _gguf_lora(checkpoint, adapter, work) if adapter else None
        self.llm = Llama(model_path=str(_gguf_base(checkpoint, work)), lora_path=str(lora) if lora else None, n_ctx=4096,
                         n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False)
        self.end = {self.tokenizer.eos_token_id, self.llm.token_eos()}

    def generate(self, prompts: list[str], max_new_tokens: int) -> Generated:
        started, texts, count = time.perf_counter(), [], 0
        for prompt in prompts:
            ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
            reply = []
            # reset: a fresh KV cache per prompt, so nothing computed for one prompt (or adapter) serves another
            for token in self.llm.generate(ids, top_k=1, temp=0.0, reset=True):
                if token in self.end or len(reply) == max_new_tokens:
                    break
                reply.append(token)
            texts.append(self.tokenizer.decode(reply, skip_special_tokens=True).strip())
            count += len(reply)
        return Generated(texts, time.perf_counter() - started, count)


def _llama_cpp_source(work: Path) -> Path:
    """llama.cpp's conversion scripts, from the llama-cpp-python source distribution pip builds from."""
    source = work / "llama-cpp-python"
    if not source.exists():
        from importlib.metadata import version

        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={version('llama-cpp-python')}", "-d", str(work / "sdist")], check=True)
        tarball = next((work / "sdist").glob("llama_cpp_python-*.tar.gz"))
        subprocess.run(["tar", "xzf", str(tarball), "-C", str(work)], check=True)
        next(work.glob("llama_cpp_python-*")).rename(source)
    return source / "vendor" / "llama.cpp"


def _gguf_base(checkpoint: Path, work: Path) -> Path:
    """The base checkpoint as an f16 GGUF. Not the candidate's own quantized GGUF: llama-cpp-python's default build
    (GGML_NATIVE) segfaulted on its first decode of a Q4 GGUF on this CPU (AMX), and f16 holds exactly the weights
    the adapters were trained on."""
    target = work / "gguf" / f"{checkpoint.name}-f16.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _llama_cpp_script("convert_hf_to_gguf.py", [str(checkpoint), "--outtype", "f16", "--outfile", str(target)], work)
    return target


def _llama_cpp_script(script: str, arguments: list[str], work: Path) -> None:
    llama_cpp = _llama_cpp_source(work)
    env = {**os.environ, "PYTHONPATH": str(llama_cpp / "gguf-py")}
    subprocess.run([sys.executable, str(llama_cpp / script), *arguments], check=True, env=env, capture_output=True)


def _gguf_lora(checkpoint: Path, adapter: Path, work: Path) -> Path:
    target = work / "lora" / f"{adapter.parent.name}-{adapter.name}-{checkpoint.name}.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _llama_cpp_script("convert_lora_to_gguf.py", ["--base", str(checkpoint), "--outtype", "f32", "--outfile", str(target), str(adapter)], work)
    return target


class OnnxGenAIEngine:
    """ONNX Runtime GenAI: the adapter merged into the base and built to an int8 ONNX model by its model builder,
    like CTranslate2's int8. Its per-request multi-LoRA needs adapters converted by Olive, not measured here. One
    sequence at a time here."""

    name = "onnxruntime-genai"

    def __init__(self, checkpoint: Path, adapter: Path | None, work: Path, threads: int):
        import onnxruntime_genai as og

        self.tokenizer = load_tokenizer(checkpoint)
        folder = _onnx_model(checkpoint, adapter, work)
        settings = json.loads((folder / "genai_config.json").read_text())
        settings["model"]["decoder"]["session_options"]["intra_op_num_threads"] = threads
        (folder / "genai_config.json").write_text(json.dumps(settings, indent=2))
        config = og.Config(str(folder))
        config.clear_providers()
        self.model = og.Model(config)
        self.og = og
        stop = self.tokenizer.eos_token_id
        self.end = {stop}

    def generate(self, prompts: list[str], max_new_tokens: int) -> Generated:
        og = self.og
        started, texts, count = time.perf_counter(), [], 0
        for prompt in prompts:
            ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
            params = og.GeneratorParams(self.model)
            params.set_search_options(do_sample=False, max_length=len(ids) + max_new_tokens)
            generator = og.Generator(self.model, params)
            generator.append_tokens(ids)
            reply = []
            while not generator.is_done() and len(reply) < max_new_tokens:
                generator.generate_next_token()
                token = int(generator.get_next_tokens()[0])
                if token in self.end:
                    break
                reply.append(token)
            texts.append(self.tokenizer.decode(reply, skip_special_tokens=True).strip())
            count += len(reply)
        return Generated(texts, time.perf_counter() - started, count)


def _onnx_model(checkpoint: Path, adapter: Path | None, work: Path) -> Path:
    from finetune.models import file_sha256

    key = f"{checkpoint.name}-{file_sha256(adapter / ADAPTER_WEIGHTS)[:12] if adapter else 'base'}"
    target = work / "onnx" / key
    if not (target / "genai_config.json").exists():
        with tempfile.TemporaryDirectory() as merged:
            from peft import PeftModel

            from finetune.models import load_base

            model = load_base(checkpoint)[0]
            if adapter is not None:
                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
            model.save_pretrained(merged)
            load_tokenizer(checkpoint).save_pretrained(merged)
            subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", merged, "-o", str(target),
                            "-p", "int8", "-e", "cpu", "-c", str(work / "onnx-cache")], check=True, capture_output=True)
    return target


def make_engine(name: str, checkpoint: Path, adapter: Path | None, work: Path, threads: int):
    if name == BASELINE:
        return TransformersEngine(checkpoint, adapter)
    if name == "transformers+lookup":
        return TransformersEngine(checkpoint, adapter, EngineConfig().prompt_lookup)
    if name == "transformers+forced":
        return TransformersEngine(checkpoint, adapter, EngineConfig().prompt_lookup, forced_ahead=True)
    if name == "transformers+shared":
        return TransformersEngine(checkpoint, adapter, EngineConfig().prompt_lookup, forced_ahead=True, shared_start=True)
    if name == "ctranslate2":
        return CTranslate2Engine(ctranslate2_model(checkpoint, adapter, "int8", work / "engines"), threads)
    if name == "ctranslate2-float32":  # what int8 costs: CTranslate2 has no bf16 on a CPU
        return CTranslate2Engine(ctranslate2_model(checkpoint, adapter, "float32", work / "engines"), threads)
    if name == "llama.cpp":
        return LlamaCppEngine(checkpoint, adapter, work, threads)
    if name == "onnxruntime-genai":
        return OnnxGenAIEngine(checkpoint, adapter, work, threads)
    raise ValueError(name)


ENGINES = [BASELINE, "transformers+lookup", "transformers+forced", "transformers+shared", "ctranslate2", "ctranslate2-float32", "llama.cpp", "onnxruntime-genai"]


# --- one engine's run, in its own process ---------------------------------------------------------------------


def measure(name: str, work: dict, folder: Path, threads: int) -> dict:
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(threads)
    checkpoint = Path(work["checkpoint"])
    result = {"engine": name, "tasks": {}, "convert_s": [], "load_s": []}
    for task in work["tasks"]:
        adapter = Path(task["adapter"])
        started = time.perf_counter()
        make_engine(name, checkpoint, adapter, folder, threads)  # converts once, where the engine needs it
        result["convert_s"].append(time.perf_counter() - started)
        started = time.perf_counter()
        engine = make_engine(name, checkpoint, adapter, folder, threads)
        result["load_s"].append(time.perf_counter() - started)
        engine.generate(task["prompts"][:1], 4)  # warm-up
        generated = engine.generate(task["prompts"], task["max_new_tokens"])
        result["tasks"][task["task_id"]] = {"texts": generated.texts, "seconds": generated.seconds, "tokens": generated.new_tokens}
        print(f"  {name} {task['task_id']}: {generated.new_tokens} tokens in {generated.seconds:.1f} s", flush=True)
        if work["single"] and task["task_id"] == work["single"]["task_id"]:
            latencies, tokens, texts = [], [], []
            for prompt, schema in zip(work["single"]["prompts"], work["single"]["schemas"]):
                constrained = isinstance(engine, (TransformersEngine, CTranslate2Engine))  # the others take no schema
                one = engine.generate([prompt], SINGLE_MAX_NEW_TOKENS, *([[schema]] if constrained else []))
                latencies.append(one.seconds)
                tokens.append(one.new_tokens)
                texts += one.texts
            result["single"] = {"latencies": latencies, "tokens": tokens, "texts": texts}
        del engine
    if work["gemma"]:
        result["gemma"] = measure_gemma(name, work["gemma"], folder, threads)
    status = Path("/proc/self/status").read_text()
    result["peak_mb"] = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
    return result


def measure_gemma(name: str, gemma: dict, folder: Path, threads: int) -> dict:
    try:
        engine = make_engine(name, Path(gemma["checkpoint"]), Path(gemma["adapter"]), folder, threads)
        engine.generate(gemma["prompts"][:1], 4)
        generated = engine.generate(gemma["prompts"], gemma["max_new_tokens"])
        return {"texts": generated.texts, "seconds": generated.seconds, "tokens": generated.new_tokens}
    except Exception as error:  # noqa: BLE001 - the table says which engine cannot serve Gemma, and why
        return {"error": f"{type(error).__name__}: {str(error)[:200]}"}


# --- the table --------------------------------------------------------------------------------------------------


def summarize(work: dict, results: dict) -> list[dict]:
    from finetune.models import encode

    base = results[BASELINE]
    rows = []

    def mean_score(texts_by_task: dict) -> float:
        scores = []
        for task in work["tasks"]:
            scores += list(score_replies(task["kind"], task["references"], texts_by_task[task["task_id"]]["texts"], encode)["score"])
        return float(np.mean(scores))

    base_score = mean_score(base["tasks"])
    base_tps = sum(t["tokens"] for t in base["tasks"].values()) / sum(t["seconds"] for t in base["tasks"].values())
    base_single = statistics.median(base["single"]["latencies"]) if "single" in base else float("nan")
    for name, run in results.items():
        tokens = sum(t["tokens"] for t in run["tasks"].values())
        seconds = sum(t["seconds"] for t in run["tasks"].values())
        pairs = [(a, b) for task in work["tasks"] for a, b in zip(run["tasks"][task["task_id"]]["texts"], base["tasks"][task["task_id"]]["texts"])]
        single = run.get("single")
        gemma = run.get("gemma", {})
        if not gemma:
            gemma_cell = "not run"
        elif "error" in gemma:
            gemma_cell = f"no: {gemma['error']}"
        else:
            same = np.mean([a == b for a, b in zip(gemma["texts"], base["gemma"]["texts"])]) if "texts" in base.get("gemma", {}) else float("nan")
            gemma_cell = f"{gemma['tokens'] / gemma['seconds']:.0f} tokens/s, {same:.0%} identical"
        rows.append({
            "engine": name,
            "batched tokens/s": tokens / seconds,
            "vs transformers": tokens / seconds / base_tps,
            "single p50 ms": statistics.median(single["latencies"]) * 1000 if single else float("nan"),
            "single p90 ms": float(np.percentile(single["latencies"], 90)) * 1000 if single else float("nan"),
            "single vs transformers": base_single / statistics.median(single["latencies"]) if single else float("nan"),
            "single tokens": statistics.median(single["tokens"]) if single else float("nan"),
            "single identical": float(np.mean([x == y for x, y in zip(single["texts"], base["single"]["texts"])]))
            if single and "single" in base else float("nan"),
            "identical replies": float(np.mean([a == b for a, b in pairs])),
            "score - transformers": mean_score(run["tasks"]) - base_score,
            "load s (median)": statistics.median(run["load_s"]),
            "convert s (median)": statistics.median(run["convert_s"]),
            "peak RSS MB": run["peak_mb"],
            "Gemma-3-270M": gemma_cell,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("SLM_HOME", ".slm")))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--tasks", default="", help="comma-separated task ids (default: every task with an adapter)")
    parser.add_argument("--gemma-task", default="task-002", help="'' leaves Gemma-3-270M out")
    parser.add_argument("--gemma-steps", type=int, default=16, help="LoRA steps of the Gemma-3-270M adapter trained here")
    args = parser.parse_args()
    home = args.home.resolve()
    import torch

    torch.set_num_threads(args.threads)  # the Gemma adapter trained here, if it is not yet
    names = args.engines.split(",")
    if names[0] != BASELINE:
        names.insert(0, BASELINE)
    work = workloads(home, args.requests, args.gemma_task, args.gemma_steps, [t for t in args.tasks.split(",") if t])
    prompts = sum(len(t["prompts"]) for t in work["tasks"])
    print(f"{len(work['tasks'])} tasks, {prompts} held-out prompts; single requests: {work['single']['task_id']} as logged, "
          f"median {work['single']['prompt_tokens']:.0f} prompt tokens", flush=True)
    folder = home / "bench" / "engines"
    folder.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    results = {}
    for name in names:
        started = time.perf_counter()
        try:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as process:
                results[name] = process.submit(measure, name, work, folder, args.threads).result()
        except ImportError as error:
            print(f"{name}: not installed ({error})", flush=True)
            continue
        print(f"{name}: done in {time.perf_counter() - started:.0f} s", flush=True)
    rows = summarize(work, results)
    import pandas as pd

    print(f"\nSmolLM2-135M adapters of the demo, {prompts} held-out prompts over {len(work['tasks'])} tasks, "
          f"{args.threads} threads; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))
    (folder / "results.json").write_text(json.dumps({"rows": rows, "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
