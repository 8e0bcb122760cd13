"""Batches at their size: what one line of a batch costs, and whether the memory of the process
doing the batch work (ingest: the file's upload, the runner that submits its lines a window at
a time, the output file streamed) stays the same whatever the batch's lines.

Starts the embedded stack and the five services as separate processes (one local provider that
paints without latency or defects, as bench/e2e.py does) and runs, through the official `openai`
package, a batch of a few lines (imports, connections), then one of --small lines and one of
--large lines (64x64 images, one each): the file uploaded, the batch created and followed to its
end, its output file read to the last line. Per batch: the wall time from the upload to the
last output line read, and the peak RSS of every service while it ran (sampled every 0.1 s).

Memory is independent of the lines when ingest's peak RSS over the large batch is within 1.2x
of its own over the small one.

The last line: `batch: lines=<large> rss_ratio=<ingest's peak, large vs small>
per_line_ms=<large batch's wall time per line>`.

    python bench/batch.py [--small 100] [--large 10000] [--window 64]
"""

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402
import psutil  # noqa: E402

from bench.e2e import start_platform, tenant  # noqa: E402
from bench.order import PeakRss  # noqa: E402
from genline_stack.fleet import SERVICES  # noqa: E402
from genline_stack.stopping import run_stoppable, signals_held  # noqa: E402


def batch_file(lines: int) -> bytes:
    return b"".join(json.dumps({"custom_id": f"line-{i}", "method": "POST", "url": "/v1/images/generations",
                                "body": {"model": "gpt-image-1", "prompt": "a ceramic mug on a wooden table",
                                         "size": "64x64", "response_format": "url", "seed": i}}).encode() + b"\n"
                    for i in range(lines))


def run(client: openai.OpenAI, lines: int, fleet) -> tuple[float, dict[str, float]]:
    """Wall seconds of a batch of `lines`, upload to last output line, and each service's peak RSS (MiB)."""
    data = batch_file(lines)
    with PeakRss({name: psutil.Process(fleet.processes[name].pid) for name in SERVICES}) as rss:
        started = time.monotonic()
        uploaded = client.files.create(file=("bench.jsonl", io.BytesIO(data)), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/images/generations",
                                      completion_window="24h")
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(1)
            batch = client.batches.retrieve(batch.id)
        read = 0
        with client.files.with_streaming_response.content(batch.output_file_id) as response:
            for _ in response.iter_lines():
                read += 1
        wall_s = time.monotonic() - started
    if batch.status != "completed" or read != lines:
        raise RuntimeError(f"batch of {lines} ended {batch.status} with {read} output lines: {batch.request_counts}")
    return wall_s, rss.peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=64, help="jobs of one batch in flight (GENLINE_BATCH_WINDOW)")
    args = parser.parse_args()
    os.environ["GENLINE_BATCH_WINDOW"] = str(args.window)
    with tempfile.TemporaryDirectory(prefix="genline-batch-") as tmp:
        stack, endpoints, fleet = start_platform(Path(tmp))
        try:
            api_key = tenant(endpoints)
            fleet.start_all()
            client = openai.OpenAI(base_url=f"{fleet.ingest_url}/v1", api_key=api_key, timeout=120)
            run(client, 10, fleet)  # imports, connections, caches
            results = {}
            for lines in (args.small, args.large):
                results[lines] = run(client, lines, fleet)
                print(f"{lines} lines: {results[lines][0]:.1f} s, peak RSS (MiB) "
                      + ", ".join(f"{name} {mb:.0f}" for name, mb in results[lines][1].items()), flush=True)
        finally:
            with signals_held():
                fleet.stop_all()
                stack.stop()
    (small_s, small_rss), (large_s, large_rss) = results[args.small], results[args.large]
    ratios = {name: large_rss[name] / small_rss[name] for name in SERVICES}
    print("peak RSS, large vs small: " + ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items()))
    print(f"ms a line: {small_s * 1000 / args.small:.1f} over {args.small} lines,"
          f" {large_s * 1000 / args.large:.1f} over {args.large}")
    print(f"\nbatch: lines={args.large} rss_ratio={ratios['ingest']:.2f} per_line_ms={large_s * 1000 / args.large:.1f}")


if __name__ == "__main__":
    run_stoppable(main)
