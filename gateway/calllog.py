"""The gateway's log: every call it answers, one line each, in a file per UTC day under `SLM_LOGS_DIR/gateway/`.

The folder is the owner's only (0700) and so is each file (0600): the lines hold the agent's raw calls. A line is
written whole, in one write, so step 1 reading a file the gateway still appends to sees whole lines.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path

from pipeline.served import log_file


class CallLog:
    def __init__(self, logs_dir: Path):
        self.logs_dir = logs_dir
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._file: int | None = None

    def write(self, record: dict, at: datetime) -> None:
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            path = log_file(self.logs_dir, at)
            if path != self._path:
                self._open(path)
            os.write(self._file, line)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                os.close(self._file)
            self._file = self._path = None

    def _open(self, path: Path) -> None:
        if self._file is not None:
            os.close(self._file)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        self._file = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._path = path
