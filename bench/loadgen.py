"""The load generator: wrk (Debian package `wrk`), driven with a Lua script that POSTs a JSON body, each request with
the next token of its thread's pool (bench/tokens.py) in its Authorization header, and prints the latency
percentiles, throughput and error counts as one JSON line.

find_wrk() finds wrk, or says how to install it; nothing here installs anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()

-- Each wrk thread runs its own Lua state: setup() numbers them, and each reads the token file of its number
-- (BENCH_TOKENS-<n>, one JWT a line), then sends each token once, in order. Out of tokens, it starts again from the
-- first, and the service's replay check answers 401: the run counts those as errors ("wrapped" says why).
local threads = {}
local counter = 0
setup = function(thread)
  thread:set("number", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

init = function(args)
  tokens = {}
  sent = 0
  local stem = os.getenv("BENCH_TOKENS")
  if stem and stem ~= "" then
    for line in io.lines(stem .. "-" .. number) do
      if line ~= "" then tokens[#tokens + 1] = "Bearer " .. line end
    end
  end
  pool = #tokens
end

request = function()
  sent = sent + 1
  if pool > 0 then
    wrk.headers["Authorization"] = tokens[(sent - 1) % pool + 1]
  end
  return wrk.format()
end

done = function(summary, latency, requests)
  local e = summary.errors
  local sent_total, wrapped = 0, 0
  for _, thread in ipairs(threads) do
    local n, p = thread:get("sent") or 0, thread:get("pool") or 0
    sent_total = sent_total + n
    if p > 0 and n > p then wrapped = wrapped + (n - p) end
  end
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"sent":%d,' ..
    '"wrapped":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean, sent_total, wrapped))
end
"""


class LoadGeneratorMissing(RuntimeError):
    pass


def find_wrk() -> str:
    """Path of wrk, or LoadGeneratorMissing saying how to install it: the benchmark installs nothing itself."""
    found = shutil.which("wrk")
    if found:
        return found
    raise LoadGeneratorMissing("wrk is not installed; install it with `sudo apt-get install wrk` (Debian/Ubuntu; CI: "
                               ".ci/install-system-packages) or your platform's package manager")


def wrk_version(wrk: str) -> str:
    result = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    return (result.stdout + result.stderr).strip().splitlines()[0] if (result.stdout + result.stderr) else "wrk"


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int
    error_detail: dict[str, int]
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    sent: int = 0  # requests wrk built (completed or not)
    wrapped: int = 0  # requests that carried a token its thread had already sent (a pool too small)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(wrk: str, url: str, body: bytes, *, connections: int, seconds: float, timeout_s: float = 5.0,
            threads: int | None = None, tokens=None) -> LoadResult:
    """POST `body` to `url` over `connections` keep-alive connections for `seconds` (closed loop). `tokens`, if
    given, is called as tokens(threads, stem) and writes the token files <stem>-0, <stem>-1... (one per wrk thread)."""
    threads = wrk_threads(connections) if threads is None else threads
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        env = {**os.environ, "BENCH_BODY": str(body_path), "BENCH_TOKENS": ""}
        if tokens is not None:
            stem = Path(tmp) / "tokens"
            tokens(threads, stem)
            env["BENCH_TOKENS"] = str(stem)
        command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                   f"--timeout={timeout_s:g}s", "-s", str(script), url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + timeout_s + 60, env=env)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    raw = json.loads(line[len("BENCH_RESULT "):])
    detail = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]}
    return LoadResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=sum(detail.values()),
        error_detail=detail,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        sent=raw["sent"],
        wrapped=raw["wrapped"],
    )


def wrk_threads(connections: int) -> int:
    return max(1, min(2, connections))
