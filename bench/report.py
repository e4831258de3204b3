"""The benchmark's report: one Markdown table per section, and the targets of issue 7 checked against the figures."""

from __future__ import annotations

# The targets, as ratios measured in the same run (and one absolute sanity figure).
P50_RATIO_TARGET = 1.5  # p50 service/baseline, typical and large patients
FETCH_RATIO_TARGET = 1.3  # fetch path p50 / injected delay
TYPICAL_P99_C1_MS = 100.0


def _run(entry: dict, server: str, connections: int) -> dict | None:
    return next((r for r in entry["runs"] if r["server"] == server and r["connections"] == connections), None)


def ratio(entry: dict, connections: int, field: str = "p50_ms", baseline: str = "baseline") -> float | None:
    service, baseline = _run(entry, "service", connections), _run(entry, baseline, connections)
    if not service or not baseline or not baseline[field]:
        return None
    return service[field] / baseline[field]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def paired_ratio(entry: dict) -> tuple[float, float, float, int] | None:
    """(median, lowest, highest, pairs) of the paired rounds' p50 ratios service/baseline at c=1, if any."""
    ratios = [pair["ratio"] for pair in entry.get("paired_rounds", []) if pair.get("ratio")]
    if not ratios:
        return None
    return median(ratios), min(ratios), max(ratios), len(ratios)


def _errors(run: dict) -> str:
    detail = ", ".join(f"{kind} {count}" for kind, count in sorted(run.get("error_detail", {}).items()))
    return f"{run['errors']} ({detail})" if run["errors"] else "0"


def _mb(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values) if values else "?"


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target that this run can judge."""
    out = []
    conc = results["concurrency"]
    for entry in results["sizes"]:
        if entry["size"] in ("typical", "large"):
            r = ratio(entry, 1)
            paired = paired_ratio(entry)
            if paired:  # judged on the median of the paired rounds; the single long run is shown beside it
                median_ratio, low, high, pairs = paired
                out.append((f"p50 service/baseline <= {P50_RATIO_TARGET} ({entry['size']}, c=1)",
                            f"{median_ratio:.2f} (median of {pairs} paired rounds, {low:.2f}-{high:.2f}; "
                            f"one long run each: {f'{r:.2f}' if r else '?'})", median_ratio <= P50_RATIO_TARGET))
            else:
                out.append((f"p50 service/baseline <= {P50_RATIO_TARGET} ({entry['size']}, c=1)",
                            f"{r:.2f}" if r else "?", r is not None and r <= P50_RATIO_TARGET))
            if (r := ratio(entry, 1, baseline="baseline-orjson")) is not None:
                # A reference, not a target: the baseline parsing with orjson, as the service does.
                out.append((f"(reference) p50 service/baseline-orjson ({entry['size']}, c=1)", f"{r:.2f}", None))
        if entry["size"] == "typical":
            run = _run(entry, "service", 1)
            if run:
                out.append((f"p99 < {TYPICAL_P99_C1_MS:g} ms (typical, c=1)", f"{run['p99_ms']:.1f} ms",
                            run["p99_ms"] < TYPICAL_P99_C1_MS))
    top = max(conc)
    errors = sum(r["errors"] for e in results["sizes"] for r in e["runs"] if r["connections"] == top)
    out.append((f"zero errors at saturation (c={top})", str(errors), errors == 0))
    fetch = results.get("fetch")
    if fetch:
        if fetch.get("measured"):
            r = fetch["p50_ms"] / fetch["delay_ms"]
            out.append((f"fetch path p50 <= {FETCH_RATIO_TARGET} x delay", f"{r:.2f} x {fetch['delay_ms']:g} ms",
                        r <= FETCH_RATIO_TARGET))
        else:
            out.append((f"fetch path p50 <= {FETCH_RATIO_TARGET} x delay", "not measured", None))
    return out


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, gunicorn "
        f"{m['gunicorn']}, Flask {m['flask']}, fhir.resources {m['fhir.resources']}; {m['wrk']}.",
        f"Load average at start {m['loadavg_start']:.2f}, at end {m.get('loadavg_end', 0):.2f}. "
        f"{results['duration_s']:g} s of load per run (closed loop, keep-alive); elapsed {results.get('elapsed_s', 0):g} s.",
        f"Server: `gunicorn {m['server_command']}` with "
        + ", ".join(f"{k}={v}" for k, v in sorted(m["server_env"].items())) + ".",
        "",
        "| patient | resources (request) | body | c | server | p50 ms | p95 ms | p99 ms | req/s | errors | "
        "peak RSS/worker MiB | p50 ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in results["sizes"]:
        label = f"{entry['size']} ({entry['record_resources']} res., {entry['observations']} Obs.)"
        for run in entry["runs"]:
            r = ratio(entry, run["connections"]) if run["server"] == "service" else None
            if run["server"] == "baseline-orjson":
                r = None
            lines.append(
                f"| {label} | {entry['request_resources']} | {entry['body_bytes'] / 1024:.0f} KiB | "
                f"{run['connections']} | {run['server']} | {run['p50_ms']:.1f} | {run['p95_ms']:.1f} | "
                f"{run['p99_ms']:.1f} | {run['throughput']:.1f} | {_errors(run)} | "
                f"{_mb(entry.get('peak_rss_mb', {}).get(run['server'], []))} | "
                f"{f'**{r:.2f}**' if r else ''} |"
            )
    lines.append("")
    for entry in results["sizes"]:
        if (paired := paired_ratio(entry)) is not None:
            pairs = entry["paired_rounds"]
            lines.append(
                f"- {entry['size']}, paired rounds at c=1 (baseline and service back to back, alternating order): p50 "
                f"ratio median **{paired[0]:.2f}** over {paired[3]} pairs (" +
                ", ".join(f"{p['baseline']['p50_ms']:.1f}/{p['service']['p50_ms']:.1f} ms" for p in pairs) + ").")
    for entry in results["sizes"]:
        lines.append(f"- {entry['size']}: {entry['source']}; {entry.get('cards', '?')} cards "
                     f"({', '.join(entry.get('rules', []))}); first call of a fresh worker "
                     f"{entry.get('first_call_ms', 0):.0f} ms.")
    fetch = results.get("fetch")
    if fetch:
        lines.append("")
        if fetch.get("measured"):
            lines += [
                f"Fetch path ({fetch['size']} patient, no prefetch, fhirServer on loopback answering each query after "
                f"{fetch['delay_ms']:g} ms; {fetch['fhir_requests_per_call']} queries a call, c=1):",
                "",
                "| floor (one delay) | p50 ms | p95 ms | p99 ms | p50 / delay | req/s | errors |",
                "|---|---|---|---|---|---|---|",
                f"| {fetch['delay_ms']:g} ms | {fetch['p50_ms']:.1f} | {fetch['p95_ms']:.1f} | {fetch['p99_ms']:.1f} | "
                f"**{fetch['p50_ms'] / fetch['delay_ms']:.2f}** | {fetch['throughput']:.1f} | {fetch['errors']} |",
            ]
        else:
            lines.append(f"Fetch path: not measured: {fetch.get('reason')}")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for name, measured, met in targets(results):
        lines.append(f"| {name} | {measured} | {'yes' if met else ('n/a' if met is None else '**no**')} |")
    return "\n".join(lines) + "\n"
