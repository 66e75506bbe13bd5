"""Print the benchmark's table from the files bench/run.sh wrote (results, cpu, latency,
statements). Usage: python bench/report.py WORK_DIR STANDIN_URL"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

TARGETS = ("baseline", "ack", "ack_known", "pipeline", "worker")


def _rows(path: Path) -> dict[str, dict]:
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, data = line.split(" ", 1)
            rows[name] = json.loads(data)
    return rows


def _cpu(path: Path) -> dict[str, tuple[float, float]]:
    """Per target: (app CPU seconds, PostgreSQL CPU seconds) spent while it was measured."""
    spent = {}
    for line in path.read_text().splitlines():
        name, app_before, db_before, app_after, db_after = line.split()
        spent[name] = (float(app_after) - float(app_before), float(db_after) - float(db_before))
    return spent


def main() -> None:
    work, standin = Path(sys.argv[1]), sys.argv[2]
    results = _rows(work / "results.txt")
    latency = _rows(work / "latency.txt")
    cpu = _cpu(work / "cpu.txt")
    statements = {}
    for line in (work / "statements.txt").read_text().splitlines():
        row = json.loads(line)
        statements[row["target"]] = row
    statements["worker"] = statements.get("pipeline", {})

    base = results["baseline"]["requests"] / (results["baseline"]["duration_us"] / 1e6)
    print(
        f"{'target':10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'vs base':>8} "
        f"{'app cpu ms/req':>14} {'db cpu ms/req':>13} {'sql/msg':>8} {'errors':>6}"
    )
    for name in TARGETS:
        if name in results:
            r = results[name]
            requests = r["requests"]
            rps = requests / (r["duration_us"] / 1e6)
            p50, p99 = r["p50_us"] / 1000, r["p99_us"] / 1000
            errors = r["non_2xx"] + r["socket_errors"]
        elif name in latency:
            r = latency[name]
            requests, rps = r["requests"], r["rate"]
            p50, p99 = r["answer_p50_ms"], r["answer_p99_ms"]
            errors = r["requests"] - r["answered"]
        else:
            continue
        app, db = cpu.get(name, (float("nan"), float("nan")))
        sql = statements.get(name, {}).get("statements_mean")
        sql_text = f"{sql:8.1f}" if sql is not None else f"{'-':>8}"
        # The worker target runs at a chosen rate: its ratio would say nothing.
        ratio = f"{rps / base:7.2f}x" if name in results else f"{'-':>8}"
        print(
            f"{name:10} {rps:8.0f} {p50:7.1f} {p99:7.1f} {ratio} "
            f"{app / max(requests, 1) * 1000:14.2f} {db / max(requests, 1) * 1000:13.2f} "
            f"{sql_text} {errors:6d}"
        )
    if "worker" in latency:
        r = latency["worker"]
        print(
            f"worker: {r['requests']} messages at {r['rate']:.0f}/s; webhook answered -> first "
            f"reply at the provider: p50 {r['reply_p50_ms']:.0f} ms, p99 {r['reply_p99_ms']:.0f} "
            f"ms, max {r['reply_max_ms']:.0f} ms ({r['replied']} of {r['answered']} replied)"
        )
    for name, row in statements.items():
        if name != "worker":
            print(
                f"statements {name}: mean {row['statements_mean']:.1f}, max "
                f"{row['statements_max']} per message over {row['messages']} "
                f"({row['failures']} not 200, {row['replies_sent']} replies sent)"
            )
    posts = json.load(urllib.request.urlopen(standin))["posts"]
    print(f"provider stand-in received {posts} sends")


if __name__ == "__main__":
    main()
