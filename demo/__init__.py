"""The demo: seeded logs of two made-up agents (`logs`, `long_logs`), the CPU-sized settings `make demo` runs with
(`config.yaml`) and the demo shop's scrub lists (`scrub.yaml`). Nothing in the product imports it."""
