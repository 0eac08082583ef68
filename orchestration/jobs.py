"""Jobs: the per-day steps over a range of days, the steps over all calls, and the per-task steps."""

from dagster import AssetSelection, define_asset_job

# Collect and scrub work day by day; a range of days runs as one run (their backfill policy).
collect_and_scrub = define_asset_job("collect_and_scrub", AssetSelection.groups("collect", "scrub"))
# Clustering reads every clean call at once.
find_tasks = define_asset_job("find_tasks", AssetSelection.groups("tasks"))
# Runs that load a model carry this tag; the instance's run queue limits how many run at once (dagster.yaml).
LOADS_MODEL = {"slm/loads-model": "true"}
# Steps 4–6 and the export work task by task: one run per task partition, so one task's failure leaves the others
# alone.
convert_tasks = define_asset_job(
    "convert_tasks", AssetSelection.groups("pick", "finetune", "evaluate", "export"), tags=LOADS_MODEL
)
# A retraining cycle evaluates again the tasks that keep their adapter, and exports the one it promotes.
evaluate_tasks = define_asset_job("evaluate_tasks", AssetSelection.groups("evaluate", "export"), tags=LOADS_MODEL)
# The report reads every task's evaluation.
report = define_asset_job("report", AssetSelection.groups("report"))
# The gateway's live pairs scored, and each task's mode set from them (modes set by hand go in its run config).
update_serving = define_asset_job("update_serving", AssetSelection.assets("live_agreement", "serving_modes"))

JOBS = [collect_and_scrub, find_tasks, convert_tasks, evaluate_tasks, report, update_serving]
