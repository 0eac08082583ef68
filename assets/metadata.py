"""Small builders for what the Dagster UI shows beside an asset."""

from dagster import MetadataValue


def counts_table(counts: dict[str, int], label: str) -> MetadataValue:
    """A Markdown table of counts, largest first."""
    rows = [f"| {key} | {value} |" for key, value in sorted(counts.items(), key=lambda item: -item[1])]
    return MetadataValue.md("\n".join([f"| {label} | count |", "|---|---|", *rows]))
