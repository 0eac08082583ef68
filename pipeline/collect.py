"""Step 1, collect: read agent log files into canonical calls; quarantine what cannot be read, with the reason.

Every `*.jsonl` and `*.jsonl.gz` under the logs folder is read once: its parse is cached under its content hash,
so a file already read is never parsed again, whatever day's partition asks for it. Exact duplicate calls
(same messages, tools, reply and model on the same day) collapse into one row that keeps their count.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from pipeline.formats import Quarantined, parse_record, parse_time, record_time, stated_time
from pipeline.settings import Settings
from pipeline.warehouse import CALLS, frame, typed_frame

PARSER_VERSION = 2  # bump when parsing changes, so cached parses are redone
EXCERPT_CHARS = 200

@dataclass(frozen=True)
class LogFile:
    path: Path
    name: str  # relative to the logs folder
    sha256: str
    modified_at: datetime
    size: int  # bytes as stored (compressed, for .gz) when the file was found


@dataclass
class FileParse:
    """A file's records as parsed, independent of where the file lies (so it can be cached by content hash)."""

    lines: int = 0
    bytes: int = 0  # bytes of the file as stored that reading went through
    blank_lines: int = 0
    records: int = 0  # non-blank lines: each must end as calls, quarantine rows, or only non-model spans
    skipped_spans: int = 0
    span_only_lines: int = 0  # records that held non-model spans and nothing else
    calls: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)

    def unaccounted(self) -> int:
        """Records that became nothing: neither a call nor a quarantine row nor only non-model spans."""
        ended = {row["source_line"] for row in self.calls} | {row["source_line"] for row in self.quarantine}
        return self.records - len(ended & set(range(1, self.lines + 1))) - self.span_only_lines


@dataclass
class CollectStats:
    files: int = 0
    files_parsed: int = 0  # the rest came from the parse cache
    lines_read: int = 0
    bytes_read: int = 0
    bytes_unread: int = 0  # of the files' sizes when found, bytes that reading never reached: must be 0
    blank_lines: int = 0
    records_read: int = 0  # non-blank lines of every file
    records_unaccounted: int = 0  # of those, ones that became nothing: must be 0
    skipped_spans: int = 0
    records: int = 0  # calls and quarantine rows on the days asked for
    calls_kept: int = 0
    duplicates: int = 0
    quarantined: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    links_outside: list[str] = field(default_factory=list)  # links in the logs folder to elsewhere: not followed
    copies: list[str] = field(default_factory=list)  # files whose content another file already holds: read once

    def reconciles(self) -> bool:
        """Every byte of every file was read, every line read ended somewhere, and every row of these days is a kept
        call, a duplicate or quarantined."""
        return self.bytes_unread == 0 and self.records_unaccounted == 0 and self.records == self.calls_kept + self.duplicates + self.quarantined


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

    def files(self) -> LogFiles:
        if not self.folder.is_dir():
            raise FileNotFoundError(f"no log folder at {self.folder}: set SLM_LOGS_DIR to the folder of your agent's logs")
        return find_log_files(self.folder, self.cache_dir)

    def collect(self, files: list[LogFile] | None = None, start: datetime | None = None,
                end: datetime | None = None) -> Collection:
        """Calls and quarantined records from `files` (default: all) whose call time is in [start, end)."""
        found = self.files() if files is None else LogFiles(files, [], [])
        reads = [read_log_file(f, self.cache_dir, self.max_line_bytes) for f in found.files]
        # the partitions run to today (UTC), whose calls still arrive
        today = datetime.now(timezone.utc).date()
        collection = assemble(found.files, [parse for parse, _ in reads], start, end, self.first_day, today)
        collection.stats.files_parsed = sum(parsed_now for _, parsed_now in reads)
        collection.stats.links_outside, collection.stats.copies = found.links_outside, found.copies
        return collection

    def days(self, files: list[LogFile] | None = None) -> list[str]:
        """The days (UTC, `YYYY-MM-DD`) that the records of `files` (default: all) fall on, in order."""
        collection = self.collect(files)
        return sorted({f"{t:%Y-%m-%d}" for t in [*collection.calls["called_at"], *collection.quarantine["called_at"]]})


# Log files and their rotated copies: agent.jsonl, agent.jsonl.gz, agent.jsonl.1, agent.jsonl.2.gz, agent.jsonl-20261102
LOG_FILE = re.compile(r"\.jsonl(?:[.-][0-9]+)?(?:\.gz)?$")


@dataclass
class LogFiles:
    files: list[LogFile]
    links_outside: list[str]  # links that lead out of the logs folder: never followed
    copies: list[str]  # files whose content an earlier file already holds (a rotated or copied log): read once


def find_log_files(folder: Path, cache_dir: Path) -> LogFiles:
    """The log files under `folder`, each with its content hash (remembered while its size and mtime hold). The
    folder is a boundary: a link out of it is not followed. Two files with the same content are one."""
    memo_path = cache_dir / "file-hashes.json"
    memo = json.loads(memo_path.read_text()) if memo_path.exists() else {}
    root = folder.resolve()
    found = LogFiles([], [], [])
    seen = set()
    for path in sorted(p for p in folder.rglob("*") if LOG_FILE.search(p.name)):
        if not path.resolve().is_relative_to(root):
            found.links_outside.append(str(path.relative_to(folder)))
            continue
        if not path.is_file():
            continue
        stat = path.stat()
        signature = [stat.st_size, stat.st_mtime_ns]
        known = memo.get(str(path))
        if known is None or known[:2] != signature:
            known = memo[str(path)] = [*signature, _sha256(path)]
        if known[2] in seen:
            found.copies.append(str(path.relative_to(folder)))
            continue
        seen.add(known[2])
        modified = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).replace(tzinfo=None)
        found.files.append(LogFile(path, str(path.relative_to(folder)), known[2], modified, stat.st_size))
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = memo_path.with_suffix(f".{uuid.uuid4().hex}.partial")  # runs at once never write the same file
    partial.write_text(json.dumps(memo))
    partial.replace(memo_path)
    return found


def read_log_file(file: LogFile, cache_dir: Path, max_line_bytes: int) -> tuple[FileParse, bool]:
    """The file's parse, from the cache when this content was parsed before; also says whether it was parsed now."""
    cached = cache_dir / f"{file.sha256}-v{PARSER_VERSION}-{max_line_bytes}.json.gz"
    if cached.exists():
        with gzip.open(cached, "rt", encoding="utf-8") as stream:
            return FileParse(**json.load(stream)), False
    parse = parse_log_file(file.path, max_line_bytes)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{uuid.uuid4().hex}.partial")
    with gzip.open(partial, "wt", encoding="utf-8") as stream:
        json.dump(asdict(parse), stream, default=_json_default)
    partial.replace(cached)  # a crash mid-write never leaves a half cache entry behind
    return parse, True


def parse_log_file(path: Path, max_line_bytes: int) -> FileParse:
    """Parse every line; a line that cannot become a call is quarantined with its reason, and reading goes on."""
    parse = FileParse()
    with open(path, "rb") as stored, (gzip.GzipFile(fileobj=stored) if path.name.endswith(".gz") else stored) as stream:
        try:
            for number, raw in enumerate(stream, start=1):
                parse.lines = number
                if number == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                if not raw.strip():
                    parse.blank_lines += 1
                    continue
                parse.records += 1
                try:
                    _parse_line(raw, number, max_line_bytes, parse)
                except Exception as error:  # whatever one record does, it is quarantined and the file goes on
                    parse.quarantine.append(_quarantine_row(number, f"unreadable record: {_error(error)}", raw, _head_time(raw)))
        except (OSError, EOFError, zlib.error) as error:
            parse.quarantine.append(
                _quarantine_row(parse.lines + 1, f"unreadable file after line {parse.lines}: {error}", b"", None)
            )
        parse.bytes = stored.tell()
    return parse


def _parse_line(raw: bytes, number: int, max_line_bytes: int, parse: FileParse) -> None:
    """Parse one line into `parse`. A record without a time of its own gets None: its file's time, flagged. A line
    that cannot be parsed is placed by the time its first bytes state, if they state one."""
    if len(raw) > max_line_bytes:
        reason = f"line over size limit ({len(raw)} bytes > {max_line_bytes})"
        parse.quarantine.append(_quarantine_row(number, reason, raw, _head_time(raw)))
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        parse.quarantine.append(_quarantine_row(number, f"bad encoding: not UTF-8 at byte {error.start}", raw, _head_time(raw)))
        return
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        # the parser's words, not the record's: in parentheses, so that step 2 does not scrub them as a quote
        reason = f"malformed JSON ({error.msg} at character {error.pos})"
        parse.quarantine.append(_quarantine_row(number, reason, raw, _head_time(raw)))
        return
    if _ESCAPED_SURROGATE.search(raw):
        record = _storable(record)
    when = record_time(record)
    if when is None and stated_time(record) is not None:
        parse.quarantine.append(_quarantine_row(number, f"unreadable call time: {str(stated_time(record))[:40]}", raw, None))
        return
    try:
        parsed = parse_record(record)
    except Quarantined as unusable:
        parse.quarantine.append(_quarantine_row(number, str(unusable), raw, when))
        return
    parse.skipped_spans += parsed.skipped_spans
    for reason in parsed.quarantined:
        parse.quarantine.append(_quarantine_row(number, reason, raw, when))
    rows = []
    for call in parsed.calls:
        row = asdict(call)
        row["called_at"] = row["called_at"] or when
        row["source_line"] = number
        rows.append(row)
    parse.calls += rows
    if not rows and not parsed.quarantined:
        if parsed.skipped_spans:
            parse.span_only_lines += 1
        else:
            parse.quarantine.append(_quarantine_row(number, "record holds no LLM call", raw, when))


# JSON escapes of UTF-16 surrogates: a lone one decodes to a code point that no UTF-8 store accepts
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_LAST_TOKEN = re.compile(r"[^\s\"',:;{}\[\]()]+$")
# where a record's time usually is, for a line that is never parsed (too long, or not JSON)
_TIME_KEY = re.compile(rb'"(?:timestamp|created_at|requestedAt|startTimeUnixNano|start_time)"\s*:\s*"?([^",}\s]+)')


def _storable(value):
    """`value` with lone surrogates replaced by U+FFFD, so that it can be cached and stored."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def _head_time(raw: bytes) -> datetime | None:
    found = _TIME_KEY.search(raw[:4096])
    return parse_time(found.group(1).decode("ascii", errors="replace")) if found else None


def _error(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error)[:120]}"


def _quarantine_row(line: int, reason: str, raw: bytes, when: datetime | None) -> dict:
    text = raw[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    excerpt = text[:EXCERPT_CHARS]
    if len(text) > EXCERPT_CHARS:
        # a token cut in half (a JWT, a key) is what no detector recognizes, yet it can still decode to an email
        excerpt = _LAST_TOKEN.sub("", excerpt)
    return {"called_at": when, "step": "collect", "source_line": line, "reason": reason, "excerpt": excerpt}


def assemble(
    files: list[LogFile],
    parses: list[FileParse],
    start: datetime | None = None,
    end: datetime | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
) -> Collection:
    """The calls and quarantine rows whose call time falls in [start, end), deduplicated per day.

    A record that states no time is placed at its file's modification time, flagged `time_from_file`. Calls
    outside the partitions, before `first_day` or after `last_day`, are quarantined on the first day, so that no
    record goes uncounted.
    """
    stats = CollectStats(files=len(files))
    calls, quarantine = [], []
    floor = datetime.combine(first_day, datetime.min.time()) if first_day else None
    ceiling = datetime.combine(last_day + timedelta(days=1), datetime.min.time()) if last_day else None

    def outside(when: datetime) -> str:
        if floor and when < floor:
            return f"call time {when:%Y-%m-%d} before the first partition day {first_day}"
        if ceiling and when >= ceiling:
            return f"call time {when:%Y-%m-%d} after the last partition day {last_day}"
        return ""

    for file, parse in zip(files, parses):
        stats.lines_read += parse.lines
        stats.bytes_read += parse.bytes
        stats.bytes_unread += max(0, file.size - parse.bytes)
        stats.blank_lines += parse.blank_lines
        stats.records_read += parse.records
        stats.records_unaccounted += parse.unaccounted()
        stats.skipped_spans += parse.skipped_spans
        for row in parse.quarantine:
            when = _as_time(row["called_at"]) or file.modified_at
            quarantine.append({**row, "called_at": floor if floor and outside(when) else when, "source_file": file.name})
        for row in parse.calls:
            when = _as_time(row["called_at"])
            placed = when or file.modified_at
            reason = outside(placed)
            if reason:
                placed = floor
            else:
                try:
                    calls.append(_call_row(row, file, when))
                    continue
                except Exception as error:  # one call that cannot be stored never takes the others down
                    reason = f"unstorable call: {_error(error)}"
            quarantine.append(_quarantine_row(row["source_line"], reason, b"", placed) | {"source_file": file.name})
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
    # the same call in two sessions is two calls: each conversation needs its own
    content = [row["messages"], row["tools"], row["response_text"], row["response_tool_calls"], row["model"], row["session_id"]]
    return {
        **{key: _text(row[key]) for key in ("format", "session_id", "workload", "model", "response_text", "finish_reason")},
        **{key: _integer(row[key]) for key in ("prompt_tokens", "completion_tokens", "turn")},
        **{key: None if row[key] is None else float(row[key]) for key in ("latency_ms", "cost_usd")},
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


def _text(value) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _integer(value) -> int | None:
    """A count as logged, refusing what is not a whole number (a string, a fraction, a bool)."""
    if value is None:
        return None
    if isinstance(value, bool) or not float(value).is_integer() or abs(value) >= 2**63:
        raise ValueError(f"not a count: {str(value)[:40]}")
    return int(value)


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
