"""Counts from several processes (gunicorn workers, Celery pool processes) reach one scrape.

Each process here is a real subprocess with `PROMETHEUS_MULTIPROC_DIR` set, as under gunicorn
(gunicorn.conf.py) or the Celery worker (chatai/celery.py)."""

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from core import prometheus_multiprocess

ROOT = Path(__file__).resolve().parents[2]

COUNT = """
from prometheus_client import Counter
Counter("chatai_test_events_total", "test", ["kind"]).labels(kind="x").inc({n})
"""


def _python(code: str, directory: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_two_worker_processes_are_merged_into_one_scrape(tmp_path):
    # given: a directory prepared by the parent, and two workers that counted
    stale = tmp_path / "counter_99999.db"
    stale.write_bytes(b"left by a previous run")
    env_before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    try:
        prometheus_multiprocess.prepare()
    finally:
        if env_before is None:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = env_before
    assert not stale.exists()
    for n in (2, 3):
        assert _python(COUNT.format(n=n), tmp_path).returncode == 0

    # when: a third process reads the merged registry
    scrape = _python(
        "from prometheus_client import generate_latest\n"
        "from core import prometheus_multiprocess\n"
        "print(generate_latest(prometheus_multiprocess.registry()).decode())",
        tmp_path,
    )

    # then
    assert scrape.returncode == 0, scrape.stderr
    assert 'chatai_test_events_total{kind="x"} 5.0' in scrape.stdout


def test_without_the_directory_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    prometheus_multiprocess.prepare()
    prometheus_multiprocess.process_exited(os.getpid())
    assert prometheus_multiprocess.directory() is None
    assert prometheus_multiprocess.registry() is prometheus_multiprocess.REGISTRY
    assert list(tmp_path.iterdir()) == []


def test_the_worker_serves_merged_counts_on_its_metrics_port(tmp_path):
    # given: a pool process's counts in the directory
    assert _python(COUNT.format(n=4), tmp_path).returncode == 0

    # when: the worker's main process serves the directory (what worker_init does, minus the
    # emptying, which would remove the counts this test planted)
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from core import prometheus_multiprocess\n"
            "print(prometheus_multiprocess.serve(0, addr='127.0.0.1'), flush=True)\n"
            "time.sleep(60)",
        ],
        cwd=ROOT,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        body = _scrape_started_server(server)
    finally:
        server.kill()
        server.wait()

    # then
    assert 'chatai_test_events_total{kind="x"} 4.0' in body


def _scrape_started_server(server: subprocess.Popen) -> str:
    port = int(server.stdout.readline())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()
