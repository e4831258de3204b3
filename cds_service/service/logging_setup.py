"""Structured logs: one JSON object a line (or readable text in development), with the fields passed as `extra`.

What may be logged: ids of requests (hookInstance), services, rules and cards, issuers, outcomes and timings.
What must never be: tokens, patient names or ids, resource contents. Callers pass only the former.

Whatever a caller managed to put in a field (a path, a card id, gunicorn's quote of a bad request line) is bounded
and made safe by both formats: strings cut to MAX_FIELD_CHARS, lists and objects to MAX_ITEMS, lone surrogates
escaped (they cannot be written as UTF-8), and in the text format every control character escaped, so that no value
can start a line of its own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra` and is part of the event.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


MAX_FIELD_CHARS = 256
MAX_MESSAGE_CHARS = 1024
MAX_ITEMS = 32
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str, limit: int = MAX_FIELD_CHARS, *, controls: bool = False) -> str:
    """text cut to `limit` characters, lone surrogates (and with `controls`, control characters) escaped."""
    if len(text) > limit:
        text = text[:limit] + f"...({len(text) - limit} more)"
    return (_CONTROL if controls else _SURROGATE).sub(_escape, text)


def safe_value(value, *, controls: bool = False, depth: int = 0):
    """A field's value as it may be logged: bounded in length, count and depth, and writable."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else safe_text(str(value), 40)
    if isinstance(value, str):
        return safe_text(value, controls=controls)
    if depth < 3 and isinstance(value, (list, tuple, set, frozenset)):
        items = [safe_value(v, controls=controls, depth=depth + 1) for v in list(value)[:MAX_ITEMS]]
        return items + ([f"...({len(value) - MAX_ITEMS} more)"] if len(value) > MAX_ITEMS else [])
    if depth < 3 and isinstance(value, dict):
        return {safe_text(str(k), 64, controls=controls): safe_value(v, controls=controls, depth=depth + 1)
                for k, v in list(value.items())[:MAX_ITEMS]}
    return safe_text(str(value), controls=controls)


def _fields(record: logging.LogRecord, *, controls: bool = False) -> dict:
    return {k: safe_value(v, controls=controls) for k, v in vars(record).items() if k not in _STANDARD}


def _message(record: logging.LogRecord, *, controls: bool = False) -> str:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad %-format in someone's log call must not lose the line
        message = str(record.msg)
    return safe_text(message, MAX_MESSAGE_CHARS, controls=controls)


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
            "event": _message(record),
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
        fields = " ".join(f"{k}={v}" for k, v in _fields(record, controls=True).items())
        line = f"{datetime.fromtimestamp(record.created).strftime('%H:%M:%S')} {record.levelname:<7} {record.name}: {_message(record, controls=True)}"
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
