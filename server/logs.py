"""JSON-line logging for the server and for vLLM's own loggers (engine processes included)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

VLLM_LOGGING_CONFIG = Path(__file__).with_name("vllm_logging.json")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "INFO") -> None:
    """Our loggers and uvicorn's to stdout as JSON lines; vLLM (also in its spawned processes) the same way.

    `server` and `uvicorn` hold their own handler and do not propagate: a library that resets the
    root logger's level (vLLM's SageMaker bootstrap sets it to ERROR) must not silence them.
    """
    for name in ("", "server", "uvicorn"):
        handler = logging.StreamHandler(sys.stdout)  # one each: that bootstrap also lowers root's handlers
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = not name
    os.environ.setdefault("VLLM_LOGGING_CONFIG_PATH", str(VLLM_LOGGING_CONFIG))
    logging.getLogger("uvicorn.error").handlers[:] = []
    logging.getLogger("uvicorn.error").propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the request log line is ours
