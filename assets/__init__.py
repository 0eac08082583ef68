"""Dagster assets, one thin module per pipeline step; the step logic they call lives in `pipeline/` and `finetune/`."""
