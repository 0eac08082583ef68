"""Collect-step throughput: a first read of the demo logs beside a re-read served by the parse cache.

    .venv/bin/python bench/collect.py [--calls 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from demo.logs import write_demo_logs
from pipeline.collect import LogFolder
from pipeline.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        write_demo_logs(logs, calls=args.calls)
        first, again = [], []
        for repeat in range(args.repeats):
            source = LogFolder.of(Settings(home=Path(f"{tmp}/home-{repeat}"), logs_dir=logs))
            started = time.perf_counter()
            stats = source.collect().stats
            first.append(time.perf_counter() - started)
            started = time.perf_counter()
            source.collect()
            again.append(time.perf_counter() - started)
    first_s, again_s = statistics.median(first), statistics.median(again)
    print(f"{stats.records} records ({stats.calls_kept} calls, {stats.duplicates} duplicates, {stats.quarantined} quarantined)"
          f" in {stats.files} files; medians of {args.repeats}")
    print(f"{'first read':<22}{first_s:>8.3f} s {stats.records / first_s:>10.0f} records/s")
    print(f"{'re-read (parse cache)':<22}{again_s:>8.3f} s {stats.records / again_s:>10.0f} records/s")
    print(f"ratio {first_s / again_s:.1f}x")


if __name__ == "__main__":
    main()
