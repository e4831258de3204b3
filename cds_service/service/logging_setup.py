"""Structured logs: one JSON object a line (or readable text in development), with the fields passed as `extra`.

What may be logged: ids of requests (hookInstance), services, rules and cards, issuers, outcomes and timings.
What must never be: tokens, patient names or ids, resource contents. Callers pass only the former.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra` and is part of the event.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def dump_json_line(event: dict) -> str:
    """One JSON line (orjson: a log line per call is written on the clinician's time); str() for anything else."""
    try:
        return orjson.dumps(event, default=str).decode()
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits, a key that is not a string
        return json.dumps(event, default=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            # The exception type and where, without the message (it could quote request data).
            exc_type, _, tb = record.exc_info
            frames = []
            while tb is not None:
                frames.append(f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}")
                tb = tb.tb_next
            event["error"] = {"type": exc_type.__name__ if exc_type else "unknown", "at": frames[-5:]}
        return dump_json_line(event)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{datetime.fromtimestamp(record.created).strftime('%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[0]:
            fields += f" error={record.exc_info[0].__name__}"
        return f"{line} {fields}".rstrip()


def configure_logging(log_format: str, level: str) -> None:
    # No formatter here or in gunicorn's writes where a record was logged from, nor the thread's or the
    # multiprocessing name: not worked out for each record (the logging HOWTO's "Optimization": a stack walk and
    # lookups on every call's log line). gunicorn's own text format prints the process id, which stays.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger("cds_service")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
