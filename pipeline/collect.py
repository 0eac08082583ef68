"""Step 1, collect: read agent log files into canonical calls; quarantine what cannot be read, with the reason.

Every `*.jsonl` and `*.jsonl.gz` under the logs folder is read once: its parse is cached under its content hash,
so a file already read is never parsed again, whatever day's partition asks for it. Exact duplicate calls
(same messages, tools, reply and model on the same day) collapse into one row that keeps their count.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from pipeline.formats import Quarantined, parse_record, parse_time, record_time
from pipeline.settings import Settings
from pipeline.warehouse import CALLS, frame, typed_frame

PARSER_VERSION = 1  # bump when parsing changes, so cached parses are redone
EXCERPT_CHARS = 200

@dataclass(frozen=True)
class LogFile:
    path: Path
    name: str  # relative to the logs folder
    sha256: str
    modified_at: datetime


@dataclass
class FileParse:
    """A file's records as parsed, independent of where the file lies (so it can be cached by content hash)."""

    lines: int = 0
    blank_lines: int = 0
    skipped_spans: int = 0
    calls: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)


@dataclass
class CollectStats:
    files: int = 0
    files_parsed: int = 0  # the rest came from the parse cache
    lines_read: int = 0
    blank_lines: int = 0
    skipped_spans: int = 0
    records: int = 0
    calls_kept: int = 0
    duplicates: int = 0
    quarantined: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def reconciles(self) -> bool:
        return self.records == self.calls_kept + self.duplicates + self.quarantined


@dataclass
class Collection:
    calls: pd.DataFrame
    quarantine: pd.DataFrame
    stats: CollectStats


class LogFolder:
    """The agent's log files in `folder`, read through a parse cache in `cache_dir` keyed by content hash."""

    def __init__(self, folder: Path, cache_dir: Path, max_line_bytes: int, first_day: date):
        self.folder, self.cache_dir, self.max_line_bytes, self.first_day = folder, cache_dir, max_line_bytes, first_day

    @classmethod
    def of(cls, settings: Settings) -> LogFolder:
        return cls(settings.logs, settings.cache_dir / "collect", settings.max_line_bytes, settings.first_day)

    def files(self) -> list[LogFile]:
        if not self.folder.is_dir():
            raise FileNotFoundError(f"no log folder at {self.folder}: set SLM_LOGS_DIR to the folder of your agent's logs")
        return find_log_files(self.folder, self.cache_dir)

    def collect(self, files: list[LogFile] | None = None, start: datetime | None = None,
                end: datetime | None = None) -> Collection:
        """Calls and quarantined records from `files` (default: all) whose call time is in [start, end)."""
        files = self.files() if files is None else files
        reads = [read_log_file(f, self.cache_dir, self.max_line_bytes) for f in files]
        collection = assemble(files, [parse for parse, _ in reads], start, end, self.first_day)
        collection.stats.files_parsed = sum(parsed_now for _, parsed_now in reads)
        return collection

    def days(self, files: list[LogFile] | None = None) -> list[str]:
        """The days (UTC, `YYYY-MM-DD`) that the records of `files` (default: all) fall on, in order."""
        collection = self.collect(files)
        return sorted({f"{t:%Y-%m-%d}" for t in [*collection.calls["called_at"], *collection.quarantine["called_at"]]})


def find_log_files(folder: Path, cache_dir: Path) -> list[LogFile]:
    """The log files under `folder`, each with its content hash (remembered while its size and mtime hold)."""
    memo_path = cache_dir / "file-hashes.json"
    memo = json.loads(memo_path.read_text()) if memo_path.exists() else {}
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz"))):
        stat = path.stat()
        signature = [stat.st_size, stat.st_mtime_ns]
        known = memo.get(str(path))
        if known is None or known[:2] != signature:
            known = memo[str(path)] = [*signature, _sha256(path)]
        modified = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).replace(tzinfo=None)
        files.append(LogFile(path, str(path.relative_to(folder)), known[2], modified))
    cache_dir.mkdir(parents=True, exist_ok=True)
    memo_path.write_text(json.dumps(memo))
    return files


def read_log_file(file: LogFile, cache_dir: Path, max_line_bytes: int) -> tuple[FileParse, bool]:
    """The file's parse, from the cache when this content was parsed before; also says whether it was parsed now."""
    cached = cache_dir / f"{file.sha256}-v{PARSER_VERSION}-{max_line_bytes}.json.gz"
    if cached.exists():
        with gzip.open(cached, "rt", encoding="utf-8") as stream:
            return FileParse(**json.load(stream)), False
    parse = parse_log_file(file.path, max_line_bytes)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    with gzip.open(partial, "wt", encoding="utf-8") as stream:
        json.dump(asdict(parse), stream, default=_json_default)
    partial.replace(cached)  # a crash mid-write never leaves a half cache entry behind
    return parse, True


def parse_log_file(path: Path, max_line_bytes: int) -> FileParse:
    """Parse every line; a line that cannot become a call is quarantined with its reason, and reading goes on."""
    parse = FileParse()
    last_time: datetime | None = None
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as stream:
        try:
            for number, raw in enumerate(stream, start=1):
                parse.lines = number
                if number == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                if not raw.strip():
                    parse.blank_lines += 1
                    continue
                last_time = _parse_line(raw, number, max_line_bytes, last_time, parse)
        except (OSError, EOFError, zlib.error) as error:
            parse.quarantine.append(
                _quarantine_row(parse.lines + 1, f"unreadable file after line {parse.lines}: {error}", b"", last_time)
            )
    return parse


def _parse_line(raw: bytes, number: int, max_line_bytes: int, last_time: datetime | None, parse: FileParse):
    """Parse one line into `parse`; return the call time to attribute the next undated rejection to."""
    if len(raw) > max_line_bytes:
        parse.quarantine.append(
            _quarantine_row(number, f"line over size limit ({len(raw)} bytes > {max_line_bytes})", raw, last_time)
        )
        return last_time
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        parse.quarantine.append(_quarantine_row(number, f"bad encoding: not UTF-8 at byte {error.start}", raw, last_time))
        return last_time
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        parse.quarantine.append(_quarantine_row(number, f"malformed JSON: {error.msg} (at character {error.pos})", raw, last_time))
        return last_time
    when = record_time(record) or last_time
    try:
        parsed = parse_record(record)
    except Quarantined as unusable:
        parse.quarantine.append(_quarantine_row(number, str(unusable), raw, when))
        return when
    parse.skipped_spans += parsed.skipped_spans
    for reason in parsed.quarantined:
        parse.quarantine.append(_quarantine_row(number, reason, raw, when))
    for call in parsed.calls:
        row = asdict(call)
        row["called_at"] = row["called_at"] or when
        row["source_line"] = number
        parse.calls.append(row)
    return max((c.called_at for c in parsed.calls if c.called_at), default=when)


def _quarantine_row(line: int, reason: str, raw: bytes, when: datetime | None) -> dict:
    excerpt = raw[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    return {"called_at": when, "step": "collect", "source_line": line, "reason": reason, "excerpt": excerpt}


def assemble(
    files: list[LogFile],
    parses: list[FileParse],
    start: datetime | None = None,
    end: datetime | None = None,
    first_day: date | None = None,
) -> Collection:
    """The calls and quarantine rows whose call time falls in [start, end), deduplicated per day.

    A record that states no time is placed at its file's modification time. Calls before `first_day` (where
    partitions begin) are quarantined on the first day, so no record goes uncounted.
    """
    stats = CollectStats(files=len(files))
    calls, quarantine = [], []
    floor = datetime.combine(first_day, datetime.min.time()) if first_day else None
    for file, parse in zip(files, parses):
        stats.lines_read += parse.lines
        stats.blank_lines += parse.blank_lines
        stats.skipped_spans += parse.skipped_spans
        for row in parse.quarantine:
            when = _as_time(row["called_at"]) or file.modified_at
            quarantine.append({**row, "called_at": max(when, floor) if floor else when, "source_file": file.name})
        for row in parse.calls:
            when = _as_time(row["called_at"])
            if floor and (when or file.modified_at) < floor:
                reason = f"call time {(when or file.modified_at):%Y-%m-%d} before the first partition day {first_day}"
                quarantine.append(_quarantine_row(row["source_line"], reason, b"", floor) | {"source_file": file.name})
                continue
            calls.append(_call_row(row, file, when))
    in_window = lambda when: (start is None or when >= start) and (end is None or when < end)  # noqa: E731
    calls = [c for c in calls if in_window(c["called_at"])]
    quarantine = [q for q in quarantine if in_window(q["called_at"])]

    table = typed_frame(calls, CALLS | {"day": "string"})
    stats.records = len(table) + len(quarantine)
    if len(table):
        table = table.sort_values(["called_at", "source_file", "source_line", "turn"], kind="stable")
        table["occurrences"] = table.groupby(["day", "content_hash"])["content_hash"].transform("size")
        table = table.drop_duplicates(["day", "content_hash"], keep="first")
        table["call_id"] = [_digest(f"{d}:{h}")[:20] for d, h in zip(table["day"], table["content_hash"])]
    table = table.drop(columns="day").reset_index(drop=True).astype(CALLS)
    stats.calls_kept = len(table)
    stats.duplicates = int((table["occurrences"] - 1).sum())
    stats.quarantined = len(quarantine)
    stats.formats = {str(k): int(v) for k, v in table["format"].value_counts().items()}
    stats.quarantine_reasons = _reason_counts(quarantine)
    return Collection(table, frame("raw_quarantine", quarantine), stats)


def _call_row(row: dict, file: LogFile, when: datetime | None) -> dict:
    called_at = when or file.modified_at
    content = [row["messages"], row["tools"], row["response_text"], row["response_tool_calls"], row["model"]]
    return {
        **{key: row[key] for key in ("format", "session_id", "workload", "model", "response_text", "finish_reason")},
        **{key: row[key] for key in ("prompt_tokens", "completion_tokens", "latency_ms", "cost_usd", "turn")},
        "called_at": called_at,
        "day": f"{called_at:%Y-%m-%d}",
        "time_from_file": when is None,
        "source_file": file.name,
        "source_line": row["source_line"],
        "messages": json.dumps(row["messages"], ensure_ascii=False),
        "tools": json.dumps(row["tools"], ensure_ascii=False),
        "response_tool_calls": json.dumps(row["response_tool_calls"], ensure_ascii=False),
        "content_hash": _digest(json.dumps(content, sort_keys=True, ensure_ascii=False)),
        "call_id": None,
        "occurrences": 1,
    }


def _reason_counts(quarantine: list[dict]) -> dict[str, int]:
    """Counts per kind of reason: the text before the first colon or parenthesis groups alike reasons."""
    counts: dict[str, int] = {}
    for row in quarantine:
        kind = row["reason"].split(":")[0].split(" (")[0]
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _as_time(value) -> datetime | None:
    return value if isinstance(value, datetime) or value is None else parse_time(value)


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in the parse cache")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
