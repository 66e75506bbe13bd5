"""The time from the webhook's answer to the first reply reaching the provider stand-in, with
a real Celery worker processing: the delay a customer sees, minus the networks.

Usage: python bench/latency.py BASE_URL PATH REQUESTS_FILE RATE SECONDS STANDIN_URL
Sends RATE pre-built requests a second for SECONDS (an open loop: a slow answer does not slow
the schedule down, so queueing shows), notes when each was answered, then reads from the
stand-in when the first reply to each sender arrived. Prints one JSON line.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import urllib.request
from urllib.parse import parse_qs, urlparse

WAIT_FOR_REPLIES = 60.0  # seconds after the last request


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def _send_all(base: str, path: str, lines: list[str], rate: float, answered: dict) -> list[float]:
    """Send on two connections (alternating), each request at its slot; return answer times."""
    host = urlparse(base)
    answer_ms: list[float] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        for index in range(offset, len(lines), 2):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            signature, body = lines[index].split("\t", 1)
            sent = time.monotonic()
            connection.request(
                "POST",
                path,
                body=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": signature,
                },
            )
            response = connection.getresponse()
            response.read()
            done = time.time()
            with lock:
                answer_ms.append((time.monotonic() - sent) * 1000)
                if response.status == 200:
                    answered[parse_qs(body)["From"][0]] = done

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answer_ms


def main() -> None:
    base, path, requests_file, rate, seconds, standin = sys.argv[1:7]
    count = int(float(rate) * float(seconds))
    lines = open(requests_file).read().splitlines()[:count]
    answered: dict[str, float] = {}
    began = time.monotonic()
    answer_ms = _send_all(base, path, lines, float(rate), answered)
    elapsed = time.monotonic() - began
    deadline = time.monotonic() + WAIT_FOR_REPLIES
    while True:
        arrivals = json.load(urllib.request.urlopen(f"{standin}/arrivals"))
        reached = [sender for sender in answered if sender in arrivals]
        if len(reached) == len(answered) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    delays = [(arrivals[sender] - answered[sender]) * 1000 for sender in reached]
    print(
        json.dumps(
            {
                "requests": len(lines),
                "answered": len(answered),
                "replied": len(reached),
                "rate": len(lines) / elapsed,
                "answer_p50_ms": _percentile(answer_ms, 0.5),
                "answer_p99_ms": _percentile(answer_ms, 0.99),
                "reply_p50_ms": _percentile(delays, 0.5),
                "reply_p99_ms": _percentile(delays, 0.99),
                "reply_max_ms": max(delays, default=float("nan")),
            }
        )
    )


if __name__ == "__main__":
    main()
