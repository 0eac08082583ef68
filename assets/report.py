"""Step 6, report: `tasks` and every task's `evaluations` → `conversion_report`, as a table, Markdown and HTML."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AutomationCondition, MetadataValue, Output, asset
from dagster_duckdb import DuckDBResource

from pipeline.report import data_url, html, markdown, report_rows, score_chart, totals
from pipeline.resources import Conversion, Reports


@asset(
    deps=[AssetKey("tasks"), AssetKey("evaluations")],
    group_name="report",
    # A new evaluation of any task updates the report; a task not evaluated yet does not hold it back, since the
    # report says "not evaluated" for it.
    automation_condition=AutomationCondition.eager().without(~AutomationCondition.any_deps_missing()),
)
def conversion_report(
    context: AssetExecutionContext, warehouse: DuckDBResource, conversion: Conversion, reports: Reports
) -> Output[pd.DataFrame]:
    """Per task: size, chosen SLM, scores, decision, adapter; in total: the share of LLM calls and tokens that can
    move to SLMs and the spend before and after. Written to SLM_HOME/reports as Markdown and HTML."""
    with warehouse.get_connection() as connection:
        tasks = connection.execute("select * from tasks order by task_id").df()
        has_evaluations = connection.execute("select count(*) from information_schema.tables where table_name = 'evaluations'").fetchone()[0]
        evaluations = connection.execute("select * from evaluations").df() if has_evaluations else pd.DataFrame(
            columns=["task_id", "variant", "candidate", "promoted", "replaceable", "reason"])
    rows = report_rows(tasks, evaluations, {c.name: c.serving_usd_per_1m_tokens for c in conversion.candidates()})
    summary = totals(rows, tasks)
    chart = score_chart(rows, conversion.decision().thresholds)
    reports.path("scores.png").write_bytes(chart)
    pictures = {"scores per task": "scores.png", "calls by task": "task_map.png"}
    text = markdown(rows, summary, pictures)
    reports.path("conversion_report.md").write_text(text)
    inline = {caption: data_url(reports.path(name).read_bytes()) for caption, name in pictures.items() if reports.path(name).exists()}
    reports.path("conversion_report.html").write_text(html(markdown(rows, summary, inline)))
    context.log.info(f"{summary['replaceable_tasks']}/{summary['tasks']} tasks replaceable: "
                     f"{summary['share_of_calls']:.0%} of calls, {summary['share_of_tokens']:.0%} of tokens")
    return Output(
        rows,
        metadata={
            **{k: float(v) for k, v in summary.items()},
            "report": MetadataValue.path(str(reports.path("conversion_report.html"))),
            "preview": MetadataValue.md(markdown(rows, summary, {"scores per task": data_url(chart)})),
        },
    )
