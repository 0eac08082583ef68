"""The new-logs sensor: a run of the collect and scrub steps for the days that new log files touch."""

from __future__ import annotations

import hashlib
import json

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets.collect import collect_calls
from assets.scrub import scrub
from pipeline.resources import LogSource


@sensor(
    asset_selection=AssetSelection.assets(collect_calls, scrub),
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
)
def new_log_files(context: SensorEvaluationContext, logs: LogSource):
    """Notices log files whose content it has not seen and asks for one run over the days they hold."""
    seen = set(json.loads(context.cursor or "[]"))
    files = logs.files()
    new = [f for f in files if f.sha256 not in seen]
    if not new:
        return SkipReason(f"no new log files among {len(files)}")
    collection = logs.collect(new)  # fills the parse cache, so the run itself reads nothing twice
    days = sorted({f"{t:%Y-%m-%d}" for t in [*collection.calls["called_at"], *collection.quarantine["called_at"]]})
    cursor = json.dumps(sorted(seen | {f.sha256 for f in files}))
    if not days:
        return SensorResult(skip_reason=f"{len(new)} new files hold no records", cursor=cursor)
    run_key = hashlib.sha256("".join(sorted(f.sha256 for f in new)).encode()).hexdigest()[:16]
    request = RunRequest(
        run_key=run_key,
        tags={ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]},
    )
    context.log.info(f"{len(new)} new log files touch {len(days)} days, {days[0]} to {days[-1]}")
    return SensorResult(run_requests=[request], cursor=cursor)
