"""The Dagster wiring: the code location's definitions, built once from `Settings`, with the I/O manager, jobs,
partitions, sensors and schedules. The only package besides `assets/` that imports Dagster."""
