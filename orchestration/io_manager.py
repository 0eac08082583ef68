"""The I/O manager: each tabular asset is the warehouse table named after it, and a run over some partitions
replaces just their rows."""

import pandas as pd
from dagster import InputContext, IOManager, OutputContext, TableColumn, TableSchema, TimeWindowPartitionsDefinition

from pipeline.warehouse import Partition, Warehouse


class WarehouseIOManager(IOManager):
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        self.warehouse.write(context.asset_key.path[-1], obj, _partition(context))
        count = "dagster/partition_row_count" if context.has_asset_partitions else "dagster/row_count"
        context.add_output_metadata(
            {
                count: len(obj),
                "dagster/column_schema": TableSchema(
                    columns=[TableColumn(name, str(dtype)) for name, dtype in obj.dtypes.items()]
                ),
            }
        )

    def load_input(self, context: InputContext) -> pd.DataFrame:
        return self.warehouse.read(context.asset_key.path[-1], _partition(context))


def _partition(context: OutputContext | InputContext) -> Partition | None:
    if not context.has_asset_partitions:
        return None
    if isinstance(context.asset_partitions_def, TimeWindowPartitionsDefinition):
        window = context.asset_partitions_time_window
        return Partition(start=window.start.replace(tzinfo=None), end=window.end.replace(tzinfo=None))
    return Partition(keys=tuple(context.asset_partition_keys))
