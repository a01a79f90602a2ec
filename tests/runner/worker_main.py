"""One worker process of the across-processes tests: ``fallthrough.process`` with a handler that keeps a log.

    python -m tests.runner.worker_main URL BATCH_ID LOG --worker NAME --threads 4 --lease 3 --delay 0.002

The handler appends ``start KEY ATTEMPT PID NS`` when a call begins and
``done KEY ATTEMPT PID NS`` when it ends (``NS``: wall clock, nanoseconds)
to this process's own log file, each line one ``os.write`` to a file opened
with ``O_APPEND``, so a line is never torn and survives a SIGKILL of the
process. It returns ``{"pid": PID, "attempt": ATTEMPT}``, so the stored
result says which process and which attempt wrote it.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import fallthrough
from fallthrough import Record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("batch_id")
    parser.add_argument("log")
    parser.add_argument("--worker", required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--delay", type=float, default=0.0)
    arguments = parser.parse_args()
    pid = os.getpid()
    log = os.open(arguments.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def handler(record: Record) -> dict[str, Any]:
        os.write(log, f"start {record.key} {record.attempt} {pid} {time.time_ns()}\n".encode())
        if arguments.delay:
            time.sleep(arguments.delay)
        os.write(log, f"done {record.key} {record.attempt} {pid} {time.time_ns()}\n".encode())
        return {"pid": pid, "attempt": record.attempt}

    with fallthrough.connect(arguments.url) as store:
        progress = fallthrough.process(
            store,
            arguments.batch_id,
            handler,
            workers=arguments.threads,
            lease=arguments.lease,
            worker=arguments.worker,
        )
    os.close(log)
    print(f"{arguments.worker} {progress}", flush=True)


if __name__ == "__main__":
    main()
