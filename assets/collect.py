"""Step 1, collect: agent log files → `raw_calls`, and what cannot be read → `raw_quarantine`."""

from dagster import (
    AssetExecutionContext,
    AssetOut,
    AssetsDefinition,
    BackfillPolicy,
    Failure,
    MetadataValue,
    Output,
    PartitionsDefinition,
    ResourceParam,
    multi_asset,
)

from assets.metadata import counts_table
from pipeline.collect import LogFolder


def collect_assets(days: PartitionsDefinition) -> AssetsDefinition:
    """Step 1 over the daily partitions `days`; a range of days runs as one run."""

    @multi_asset(
        outs={
            "raw_calls": AssetOut(
                description="One canonical row per LLM call of the agent, exact duplicates collapsed (raw: not yet scrubbed).",
            ),
            "raw_quarantine": AssetOut(
                description="Log records that could not become calls, with file, line, reason and a raw excerpt (step 2 "
                "scrubs it into `quarantine`).",
            ),
        },
        partitions_def=days,
        backfill_policy=BackfillPolicy.single_run(),
        group_name="collect",
    )
    def collect_calls(context: AssetExecutionContext, logs: ResourceParam[LogFolder]):
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
                "reconciliation": f"{stats.bytes_read:,} bytes read, {stats.bytes_unread} unread; "
                f"{stats.records_read} records read, {stats.records_unaccounted} unaccounted; "
                f"{stats.records} on these days = {stats.calls_kept} kept + {stats.duplicates} duplicates"
                f" + {stats.quarantined} quarantined",
                "files": stats.files,
                "files_parsed": stats.files_parsed,
                "links_not_followed": MetadataValue.json(stats.links_outside),
                "copies_read_once": MetadataValue.json(stats.copies),
                "lines_read": stats.lines_read,
                "non_model_spans_skipped": stats.skipped_spans,
                "formats": counts_table(stats.formats, "format"),
            },
        )
        yield Output(
            collection.quarantine,
            "raw_quarantine",
            metadata={"quarantined": stats.quarantined, "reasons": counts_table(stats.quarantine_reasons, "reason")},
        )

    return collect_calls
