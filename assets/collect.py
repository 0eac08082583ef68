"""Step 1, collect: agent log files → `raw_calls`, and what cannot be read → `collect_rejects`."""

from dagster import AssetExecutionContext, AssetOut, BackfillPolicy, Failure, Output, multi_asset

from assets.metadata import counts_table
from pipeline.partitions import daily
from pipeline.resources import LogSource


@multi_asset(
    outs={
        "raw_calls": AssetOut(
            description="One canonical row per LLM call of the agent, exact duplicates collapsed (raw: not yet scrubbed).",
            metadata={"partition_expr": "called_at"},
        ),
        "collect_rejects": AssetOut(
            description="Log records that could not become calls, with file, line, reason and a raw excerpt (step 2 "
            "scrubs it into `quarantine`).",
            metadata={"partition_expr": "called_at"},
        ),
    },
    partitions_def=daily,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="collect",
)
def collect_calls(context: AssetExecutionContext, logs: LogSource):
    """Read every log file, normalize each record to a call, and quarantine what cannot be read."""
    window = context.partition_time_window
    collection = logs.collect(start=window.start.replace(tzinfo=None), end=window.end.replace(tzinfo=None))
    stats = collection.stats
    if not stats.reconciles():
        raise Failure(f"counts do not reconcile: {stats}")
    context.log.info(
        f"{stats.files} files ({stats.files_parsed} parsed now, the rest cached): {stats.records} records → "
        f"{stats.calls_kept} calls + {stats.duplicates} duplicates + {stats.quarantined} quarantined"
    )
    yield Output(
        collection.calls,
        "raw_calls",
        metadata={
            "records": stats.records,
            "calls_kept": stats.calls_kept,
            "duplicates": stats.duplicates,
            "quarantined": stats.quarantined,
            "reconciliation": f"{stats.records} records = {stats.calls_kept} kept + {stats.duplicates} duplicates"
            f" + {stats.quarantined} quarantined",
            "files": stats.files,
            "files_parsed": stats.files_parsed,
            "lines_read": stats.lines_read,
            "non_model_spans_skipped": stats.skipped_spans,
            "formats": counts_table(stats.formats, "format"),
        },
    )
    yield Output(
        collection.quarantine,
        "collect_rejects",
        metadata={"quarantined": stats.quarantined, "reasons": counts_table(stats.quarantine_reasons, "reason")},
    )
