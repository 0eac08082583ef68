"""Step 6, report: `tasks` and every task's `evaluations` → `conversion_report`, as a table, Markdown and HTML."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AutomationCondition, MetadataValue, Output, ResourceParam, asset

from finetune.candidates import load_candidates
from pipeline.report import data_url, html, markdown, report_rows, score_chart, totals
from pipeline.settings import Settings
from pipeline.warehouse import Warehouse


@asset(
    deps=[AssetKey("tasks"), AssetKey("evaluations")],
    group_name="report",
    # A new evaluation of any task updates the report; a task not evaluated yet does not hold it back, since the
    # report says "not evaluated" for it.
    automation_condition=AutomationCondition.eager().without(~AutomationCondition.any_deps_missing()),
)
def conversion_report(
    context: AssetExecutionContext, warehouse: ResourceParam[Warehouse], settings: ResourceParam[Settings]
) -> Output[pd.DataFrame]:
    """Per task: size, chosen SLM, scores, decision, adapter; in total: the share of LLM calls and tokens that can
    move to SLMs and the spend before and after. Written to SLM_HOME/reports as Markdown and HTML."""
    tasks = warehouse.read("tasks").sort_values("task_id")
    serving_cost = {c.name: c.serving_usd_per_1m_tokens for c in load_candidates(settings.candidates_file)}
    rows = report_rows(tasks, warehouse.read("evaluations"), serving_cost)
    summary = totals(rows, tasks)
    chart = score_chart(rows, settings.decision.thresholds)
    settings.write_report("scores.png", chart)
    pictures = {"scores per task": "scores.png", "calls by task": "task_map.png"}
    settings.write_report("conversion_report.md", markdown(rows, summary, pictures))
    inline = {
        caption: data_url(settings.report_file(name).read_bytes())
        for caption, name in pictures.items()
        if settings.report_file(name).exists()
    }
    settings.write_report("conversion_report.html", html(markdown(rows, summary, inline)))
    context.log.info(
        f"{summary['replaceable_tasks']}/{summary['tasks']} tasks replaceable: "
        f"{summary['share_of_calls']:.0%} of calls, {summary['share_of_tokens']:.0%} of tokens"
    )
    return Output(
        rows,
        metadata={
            **{k: float(v) for k, v in summary.items()},
            "report": MetadataValue.path(str(settings.report_file("conversion_report.html"))),
            "preview": MetadataValue.md(markdown(rows, summary, {"scores per task": data_url(chart)})),
        },
    )
