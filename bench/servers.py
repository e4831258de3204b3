"""Start the service and the baseline exactly as the production image does: gunicorn with the image's config file
(docker/gunicorn.conf.py) and the image's environment (the ENV of the Dockerfile), bound to 127.0.0.1 only.

The service runs as the image runs it, CDS_AUTH=required, with a trust file (CDS_ISSUERS) that trusts the key the
benchmark generates (bench/tokens.py) and CDS_PUBLIC_URL set to its own address, as a deployment sets it: every call
carries a fresh ES384-signed token that the service verifies, replay check included. A second instance with
CDS_AUTH=off gives the token check's own share. Differences from production, all stated in the report:
CDS_FHIR_ALLOW_HTTP=true (the fake FHIR server of the fetch path is plain http on loopback) and the bind address.
Logs go to a file in the results folder.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .data import ROOT

DOCKERFILE = ROOT / "Dockerfile"
GUNICORN_CONF = ROOT / "docker" / "gunicorn.conf.py"
# What the image sets when the Dockerfile is not at hand (kept in sync with it; the Dockerfile wins when present).
IMAGE_DEFAULTS = {
    "GUNICORN_WORKERS": "2",
    "GUNICORN_THREADS": "4",
    "GUNICORN_TIMEOUT": "30",
    "GUNICORN_KEEPALIVE": "5",
    "CDS_LOG_FORMAT": "json",
    "CDS_LOG_LEVEL": "INFO",
}
BENCH_OVERRIDES = {"CDS_FHIR_ALLOW_HTTP": "true"}
SERVICE_APP = "cds_service:create_app()"
BASELINE_APP = "bench.baseline:create_app()"
BASELINE_ORJSON_APP = "bench.baseline:create_app('orjson')"
BASELINE_TOKEN_APP = "bench.baseline:create_app(check_token=True)"


BENCH_HASH_SECRET = secrets.token_hex(32)


def image_environment() -> dict[str, str]:
    """The ENV of the Dockerfile's runtime stage that concerns gunicorn and the service (GUNICORN_*, CDS_*)."""
    env = dict(IMAGE_DEFAULTS)
    if not DOCKERFILE.is_file():
        return env
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    runtime = text.rsplit("\nFROM ", 1)[-1]  # the last stage is the one that runs
    for line in runtime.splitlines():
        if line.strip().startswith("ENV "):
            for token in shlex.split(line.strip()[4:]):
                name, sep, value = token.partition("=")
                if sep and re.match(r"^(GUNICORN|CDS)_[A-Z_]+$", name):
                    env[name] = value
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_command(app: str, port: int) -> list[str]:
    """The image's ENTRYPOINT/CMD (`gunicorn --config gunicorn.conf.py APP`), from this venv."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn) if gunicorn.exists() else "gunicorn"]
    if GUNICORN_CONF.is_file():
        # The image's config; the address on the command line wins over it: loopback only, whatever the config reads.
        command += ["--config", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{port}"]
    else:  # the image's settings, spelled out
        env = image_environment()
        command += ["--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
                    "--workers", env["GUNICORN_WORKERS"], "--threads", env["GUNICORN_THREADS"],
                    "--timeout", env["GUNICORN_TIMEOUT"], "--keep-alive", env["GUNICORN_KEEPALIVE"], "--preload"]
    return command + [app]


@dataclass
class Server:
    name: str
    app: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    public_url: bool = False  # CDS_PUBLIC_URL = this server's own address (the JWT aud), as a deployment sets it
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CDS_", "GUNICORN_"))}
        env.update(image_environment())
        env.update(BENCH_OVERRIDES)
        env.update(self.extra_env)
        # The service's database beside its log (the image's /var/lib/calcinosis-cds is not on this machine).
        env.setdefault("CDS_DATA_DIR", str(self.log_path.with_suffix(".data")))
        # Production requires the patient-hash secret (the same on every replica); one per benchmark run will do.
        env.setdefault("CDS_HASH_SECRET", BENCH_HASH_SECRET)
        env.update({"HOST": "127.0.0.1", "PORT": str(self.port), "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                    "PYTHONUNBUFFERED": "1"})
        if self.public_url:
            env["CDS_PUBLIC_URL"] = self.url
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def start(self, timeout: float = 60.0) -> "Server":
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> "Server":
        """Start gunicorn without waiting for it (several servers start side by side: see start_all)."""
        self.port = self.port or free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(gunicorn_command(self.app, self.port), cwd=ROOT, env=self.environment(),
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def wait_ready(self, timeout: float = 60.0) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up (code {self.process.returncode}); "
                                   f"see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200 and len(self.worker_pids()) >= self.expected_workers():
                        return self._loopback_only()
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer /healthz within {timeout:g} s; see {self.log_path}")

    def _loopback_only(self) -> "Server":
        """Stop at once if gunicorn listens anywhere but 127.0.0.1 (its log says where)."""
        log = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        addresses = re.findall(r"Listening at: (\S+)", log)
        if any(f":{self.port}" in a and "127.0.0.1" not in a for a in addresses):
            self.stop()
            raise RuntimeError(f"{self.name} listened on {addresses}, not on loopback only; see {self.log_path}")
        return self

    def expected_workers(self) -> int:
        return int(self.environment().get("GUNICORN_WORKERS", "2") or 2)

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in children]

    def peak_rss_mb(self) -> list[float]:
        """Peak resident memory (VmHWM) of each worker since it started, in MiB."""
        peaks = []
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
            except OSError:
                continue
        return peaks

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own process group (start_new_session)
            self.process.wait(timeout=5)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_all(servers: list[Server], timeout: float = 90.0) -> None:
    """Start the servers side by side and wait until each answers; on any failure, stop them all."""
    try:
        for server in servers:
            server.spawn()
        for server in servers:
            server.wait_ready(timeout)
    except BaseException:
        for server in servers:
            server.stop()
        raise
