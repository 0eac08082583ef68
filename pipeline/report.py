"""Step 6's conversion report: per task, what it is, which SLM, how each variant scored and what was decided; in
total, the share of the agent's LLM calls and tokens that can move to SLMs and the spend before and after."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from markdown_it import MarkdownIt

from pipeline.warehouse import frame

def report_rows(tasks: pd.DataFrame, evaluations: pd.DataFrame, serving_cost: dict[str, float]) -> pd.DataFrame:
    """One row per task; a task step 6 has not evaluated stays with the LLM, with that reason."""
    rows = []
    for task in tasks.itertuples():
        mine = evaluations[evaluations["task_id"] == task.task_id]
        by_variant = {v: mine[mine["variant"] == v] for v in ("zero_shot", "few_shot")}
        promoted = mine[mine["promoted"]]
        candidate = mine["candidate"].iloc[0] if len(mine) else ""
        rows.append({
            "task_id": task.task_id, "title": task.title, "calls": task.calls, "share_of_calls": task.share_of_calls,
            "share_of_tokens": task.share_of_tokens, "spend_usd": task.spend_usd, "candidate": candidate,
            "zero_shot": _first(by_variant["zero_shot"], "score"), "few_shot": _first(by_variant["few_shot"], "score"),
            "fine_tuned": _first(promoted, "score"), "ci_low": _first(promoted, "ci_low"), "ci_high": _first(promoted, "ci_high"),
            "adapter_version": int(promoted["adapter_version"].iloc[0]) if len(promoted) else 0,
            "replaceable": bool(mine["replaceable"].iloc[0]) if len(mine) else False,
            "reason": mine["reason"].iloc[0] if len(mine) else "not evaluated",
            "slm_usd_per_1m_tokens": serving_cost.get(candidate, np.nan),
            "prompt_tokens_logged": _first(by_variant["zero_shot"], "prompt_tokens"),
            "prompt_tokens": _first(promoted, "prompt_tokens"),
            "calls_unfit": int(promoted["calls_unfit"].iloc[0]) if len(promoted) else 0,
            "input_rule": promoted["input_rule"].iloc[0] if len(promoted) else "",
        })
    return frame("conversion_report", rows)


def totals(rows: pd.DataFrame, tasks: pd.DataFrame) -> dict[str, float]:
    """Shares are of all calls, unassigned ones included; spend after = LLM spend left + SLM serving of the rest."""
    moved = rows[rows["replaceable"]]
    tokens = dict(zip(tasks["task_id"], tasks["tokens"]))
    spend_all = float((tasks["spend_usd"] / tasks["share_of_spend"].clip(lower=1e-12)).max()) if len(tasks) else 0.0
    slm_spend = sum(tokens[t] * cost / 1e6 for t, cost in zip(moved["task_id"], moved["slm_usd_per_1m_tokens"]))
    return {
        "tasks": len(rows),
        "replaceable_tasks": len(moved),
        "share_of_calls": float(moved["share_of_calls"].sum()),
        "share_of_tokens": float(moved["share_of_tokens"].sum()),
        "spend_before_usd": spend_all,
        "spend_after_usd": spend_all - float(moved["spend_usd"].sum()) + slm_spend,
    }


def score_chart(rows: pd.DataFrame, thresholds: dict[str, float]) -> bytes:
    """A PNG: per task, the base model zero-shot and few-shot beside the promoted adapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4), dpi=100)
    x = np.arange(len(rows))
    for offset, (column, name) in zip((-0.27, 0, 0.27), (("zero_shot", "zero-shot"), ("few_shot", "few-shot"), ("fine_tuned", "fine-tuned"))):
        axes.bar(x + offset, rows[column].fillna(0), width=0.26, label=name)
    axes.set_xticks(x, [f"{t}\n{'✓' if r else '✗'}" for t, r in zip(rows["task_id"], rows["replaceable"])], fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_ylabel("mean held-out score")
    axes.set_title(f"Scores per task (✓ replaceable; thresholds {', '.join(f'{k} {v}' for k, v in thresholds.items())})")
    axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def markdown(rows: pd.DataFrame, summary: dict[str, float], pictures: dict[str, str]) -> str:
    """The report; `pictures` maps a caption to an image path or data URL."""
    table = rows[["task_id", "title", "calls", "share_of_calls", "share_of_tokens", "candidate", "zero_shot", "few_shot",
                  "fine_tuned", "adapter_version", "replaceable", "reason"]]
    lines = [
        "# Conversion report",
        "",
        f"**{summary['replaceable_tasks']} of {summary['tasks']} tasks can move to a small model: "
        f"{summary['share_of_calls']:.0%} of the agent's LLM calls and {summary['share_of_tokens']:.0%} of its tokens.**",
        "",
        f"Estimated LLM spend over these logs: ${summary['spend_before_usd']:.2f} before, "
        f"${summary['spend_after_usd']:.2f} after (the SLMs' serving cost included).",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
        "What each promoted adapter reads: static prompt text pruned, the conversation cut to its window.",
        "",
        rows[["task_id", "prompt_tokens_logged", "prompt_tokens", "calls_unfit", "input_rule"]].to_markdown(index=False, floatfmt=".0f"),
        "",
    ]
    lines += [f"![{caption}]({source})\n" for caption, source in pictures.items()]
    return "\n".join(lines)


def html(markdown_text: str) -> str:
    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    style = "body{font-family:sans-serif;max-width:72rem;margin:2rem auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Conversion report</title><style>{style}</style></head><body>{body}</body></html>"


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _first(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].iloc[0]) if len(frame) else np.nan
