"""gunicorn settings for the container image, each taken from an environment variable with a default sized for a
2-core container. Copied into the image as /etc/calcinosis-cds/gunicorn.conf.py; the variables are listed in
docs/docker.md.

Sizing: the service is CPU-bound (rule evaluation, FHIR parsing) with short waits on FHIR fetches, so one process per
core with a few threads each keeps both cores busy while a fetch is in flight, and stays well within a CDS Hooks
client's time budget.
"""

import logging
import os
import shutil
import sys
import tempfile

# Prometheus multiprocess mode (cds_service/service/metrics.py): every worker writes its metrics to files here, and
# /metrics adds them up. Set before anything imports prometheus-client; an empty directory for each start (files of a
# former run would be added up too). On the memory file system, like the workers' heartbeats.
_made_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
if not _made_metrics_dir:
    _metrics = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(_metrics, mode=0o700, exist_ok=True)
    for _name in os.listdir(_metrics):
        if _name.endswith(".db"):
            os.unlink(os.path.join(_metrics, _name))
else:
    _metrics = tempfile.mkdtemp(prefix="calcinosis-cds-metrics-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0:
        raise SystemExit(f"{name} must not be negative, not {raw!r}")
    return value


# All interfaces of the container on PORT; GUNICORN_BIND replaces the whole address (e.g. unix:/run/cds/cds.sock).
bind = os.environ.get("GUNICORN_BIND", "").strip() or f"0.0.0.0:{_int('PORT', 8080)}"
workers = max(1, _int("GUNICORN_WORKERS", 2))
threads = max(1, _int("GUNICORN_THREADS", 4))
# gthread, safe against slow clients (cds_service/gunicorn_hooks.py): a request's line and headers are gathered
# without holding a thread (CDS_REQUEST_HEAD_TIMEOUT_SECONDS, 10 s, from its first byte), and a request a thread
# serves has GUNICORN_TIMEOUT seconds in all, after which its connection is shut down (a slow body or a slow reader
# frees the thread then). gunicorn's own `timeout` restarts only a worker whose main loop stops responding: it never
# ends one request of a gthread worker.
worker_class = "cds_service.service.gunicorn_hooks.ThreadWorker"
timeout = _int("GUNICORN_TIMEOUT", 30)
# What precedes a body (400/431 past these): CDS Hooks paths are short, callers send a handful of headers, and the
# longest is Authorization with a JWT of at most 16 KiB. The same values as `calcinosis-cds serve`.
limit_request_line = 2048
limit_request_fields = 50
limit_request_field_size = 16 * 1024 + 512
# On SIGTERM (docker stop), workers finish their requests for at most this long; keep it under docker's stop
# timeout (10 s by default, `docker stop -t` / compose `stop_grace_period` to change it).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 8)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then (with jitter, so they do not all restart at once); 0 turns it off.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 0)
# Load the app once in the master (workers share its memory); a broken app stops the container at once rather than
# leaving workers to crash one after another.
preload_app = True


def pre_fork(server, worker):
    """Start-up objects are frozen before each fork, out of the workers' garbage collections (a pause of 20-40 ms
    every ten calls or so without it; cds_service/gunicorn_hooks.py)."""
    from cds_service.service.gunicorn_hooks import pre_fork as freeze_start_up_objects

    freeze_start_up_objects(server, worker)


def child_exit(server, worker):
    """A worker exited: prometheus-client marks its process dead (cds_service/service/gunicorn_hooks.py)."""
    from cds_service.service.gunicorn_hooks import child_exit as mark_worker_dead

    mark_worker_dead(server, worker)


def on_exit(server):
    if _made_metrics_dir:  # an operator's directory is left in place
        shutil.rmtree(_metrics, ignore_errors=True)


# Worker heartbeats on the memory file system, not the container's overlay.
worker_tmp_dir = "/dev/shm"
# Behind a TLS-terminating proxy: trust its X-Forwarded-* headers only from the addresses listed here.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Logs: everything on stdout. The access log is off (the service logs each call itself, without patient data);
# gunicorn's own messages (start, workers, shutdown) use the service's JSON format unless CDS_LOG_FORMAT=text.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
if os.environ.get("CDS_LOG_FORMAT", "json").strip().lower() != "text":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "cds_service.service.logging_setup.JsonFormatter"}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        },
        "root": {"level": "INFO", "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stdout"], "propagate": False},
            # Off: the service logs each call itself (ids, status, timing), and health checks would flood it.
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


def _refuse_invalid_settings() -> None:
    """Build the app once before gunicorn starts, so invalid settings (an unknown CDS_AUTH, a bad issuers file) stop
    the container with one clear line and exit code 2, not a gunicorn traceback."""
    if os.environ.get("CDS_SKIP_SETTINGS_CHECK", "").strip().lower() in ("1", "true", "yes"):
        return
    try:
        from cds_service import create_app
        from cds_service.service.settings import SettingsError
    except Exception as error:  # the image itself is broken: say so, with the cause
        print(f"calcinosis-cds: cannot import the service: {type(error).__name__}: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    logging.disable(logging.CRITICAL)  # start-up warnings are logged once, when gunicorn loads the app for real
    try:
        create_app()
    except SettingsError as error:
        print(f"calcinosis-cds: refusing to start, invalid settings: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        logging.disable(logging.NOTSET)


_refuse_invalid_settings()
