"""Training throughput: samples per second for 1 and 2 processes (torchrun) and 0, 1 and 2
DataLoader workers, with the paper's recipe (batch 16 of 48x48 patches, 2304 queries) on the
synthetic degradation, which is the data source that costs the most to make.

    python benchmarks/train_throughput.py --json benchmarks/results/train_throughput_cpu.json
    python benchmarks/train_throughput.py --device cuda --preset paper --processes 1,2,4

Each configuration trains `--steps` steps from scratch (validation off) in a fresh process and
reports the throughput the training loop measured, startup excluded. Threads per process are
the cores divided by the processes, so configurations never oversubscribe the machine. Take it
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ddir_zoom.imaging.io import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def run(processes: int, workers: int, args: argparse.Namespace) -> float:
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // processes)
    with tempfile.TemporaryDirectory() as out:
        train_args = ["--model", "ddir", "--preset", args.preset, "--photos", args.photos,
                      "--iterations", str(args.steps), "--val-every", str(10**9),
                      "--workers", str(workers), "--threads", str(threads), "--device",
                      args.device, "--out", out]
        if processes == 1:
            command = [sys.executable, "-m", "training.train", *train_args]
        else:
            command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                       str(processes), "-m", "training.train", *train_args]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                              check=False)
    match = re.search(r"([\d.]+) samples/s", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return float(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default=str(DATA / "photos"))
    parser.add_argument("--preset", default="compact")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rows = []
    print("| processes | loader workers | samples/s |\n|---|---|---|")
    for processes in (int(p) for p in args.processes.split(",")):
        for workers in (int(w) for w in args.workers.split(",")):
            rate = run(processes, workers, args)
            rows.append({"processes": processes, "workers": workers, "samples_per_s": rate})
            print(f"| {processes} | {workers} | {rate:.2f} |", flush=True)
    if args.json:
        write_text_atomic(args.json, json.dumps({
            "machine": f"{platform.processor() or platform.machine()}, "
                       f"{len(os.sched_getaffinity(0))} cores", "device": args.device,
            "preset": args.preset, "steps": args.steps, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
