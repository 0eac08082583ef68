"""Dagster assets, one thin module per pipeline step; the step logic they call lives in `pipeline/` and `finetune/`.

Partitioned assets are built by a factory per step from the partitions they run over (Dagster's asset-factory
pattern), so that the daily partitions can begin where the code location's settings say."""

from dagster import AssetsDefinition, DynamicPartitionsDefinition, PartitionsDefinition

from assets.collect import collect_assets
from assets.evaluate import evaluate_asset
from assets.export import export_asset
from assets.finetune import finetune_asset
from assets.pick import pick_asset
from assets.report import conversion_report
from assets.router import task_router
from assets.scrub import scrub_assets
from assets.serving import live_agreement, serving_modes
from assets.tasks import tasks_assets


def build_assets(days: PartitionsDefinition, tasks: DynamicPartitionsDefinition) -> list[AssetsDefinition]:
    """Every asset of the six steps: steps 1–2 per day of `days`, 3 over all calls, 4–6 and the export per task of
    `tasks`."""
    return [
        collect_assets(days),
        scrub_assets(days),
        tasks_assets(tasks),
        task_router,
        pick_asset(tasks),
        finetune_asset(tasks),
        evaluate_asset(tasks),
        export_asset(tasks),
        conversion_report,
        live_agreement,
        serving_modes,
    ]
