"""The warehouse: Dagster's DuckDB I/O manager for pandas, which also keeps a table for a day with no rows."""

from __future__ import annotations

import pandas as pd
from dagster import MetadataValue, OutputContext, TableColumn, TableSchema
from dagster._core.storage.db_io_manager import TableSlice
from dagster_duckdb import DuckDBIOManager
from dagster_duckdb_pandas import DuckDBPandasTypeHandler


class _PandasTypeHandler(DuckDBPandasTypeHandler):
    """Dagster's handler skips empty frames, so a first day with nothing quarantined would leave no table for the
    next step to read; here an empty frame still creates its (typed) table."""

    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        if not obj.empty:
            return super().handle_output(context, table_slice, obj, connection)
        connection.execute(f"create table if not exists {table_slice.schema}.{table_slice.table} as select * from obj")
        context.add_output_metadata(
            {
                "dagster/partition_row_count" if context.has_partition_key else "dagster/row_count": 0,
                "dataframe_columns": MetadataValue.table_schema(
                    TableSchema(columns=[TableColumn(name=name, type=str(dtype)) for name, dtype in obj.dtypes.items()])
                ),
            }
        )


class WarehouseIOManager(DuckDBIOManager):
    """Each tabular asset is a table named after it in the DuckDB warehouse."""

    @staticmethod
    def type_handlers():
        return [_PandasTypeHandler()]

    @staticmethod
    def default_load_type() -> type:
        return pd.DataFrame
