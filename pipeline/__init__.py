"""Step logic: plain, typed functions and dataclasses, testable without Dagster and without a model."""
