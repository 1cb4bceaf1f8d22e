"""OpenMP wait policies, on an idle machine and beside a competing load (ddir_zoom.threads).

Each policy runs in a fresh process (OpenMP reads its variables once, at start): the shipped
student (the viewer's first pass) refines a 1280x800 view of the bundled photo at x2.5 tile by
tile through the engine, once cold, then `--repeats` times warm; the best warm time is kept.
Each policy is measured idle and then beside `--load` single-threaded CPU-bound processes (as
other programs would be), with the renderer at `--threads` threads: the count the viewer takes
on a machine whose load average has not yet seen the competing load.

    python benchmarks/wait_policy.py --spins 30000,100000 \
        --json benchmarks/results/wait_policy_cpu.json > benchmarks/results/wait_policy_cpu.txt

Policies: "passive" (sleep at once), "shipped" (what ddir_zoom sets: passive after a short
spin, see ddir_zoom.threads), "active" (spin always), and with `--spins 3000,30000` passive
waiting after that many spins (GNU OpenMP's GOMP_SPINCOUNT, about 100 000 per millisecond).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from competing_load import competing_load

POLICIES = {
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"},
    "shipped": {},  # whatever ddir_zoom.threads sets
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
}
_OWN = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def child(scale: float, threads: int, repeats: int) -> dict:
    import ddir_zoom  # noqa: F401  (the policy, before torch loads)
    from ddir_zoom.engine import Engine, View
    from ddir_zoom.engine.view import tile_rect, visible_tiles
    from ddir_zoom.resources import bundled_first_pass, sample_photo
    from ddir_zoom.threads import configure

    configure(threads)
    engine = Engine.open(sample_photo(), device="cpu")
    engine.add_model("student", bundled_first_pass("ddir"))
    engine.method("student").prepare()
    view = View.centred(scale, (engine.size[0] / 2, engine.size[1] / 2), (800, 1280))
    tiles = visible_tiles(view, engine.size)

    def refine() -> float:
        start = time.perf_counter()
        for tile in tiles:
            y, x, h, w = tile_rect(tile, engine.size, scale)
            engine.render_region("student", scale, (y, x), (h, w))
        return time.perf_counter() - start

    cold = refine()
    warm = [refine() for _ in range(repeats)]
    return {"cold_s": cold, "warm_s": warm, "best_warm_s": min(warm),
            "environment": {k: os.environ.get(k) for k in _OWN}}


def measure(policy: str, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _OWN}
    env.update(POLICIES[policy])
    command = [sys.executable, __file__, "--child", "--scale", str(args.scale), "--threads",
               str(args.threads), "--repeats", str(args.repeats)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=2.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--load", type=int, default=2, help="competing processes")
    p.add_argument("--spins", default="",
                   help="also GOMP_SPINCOUNT values with passive waiting, e.g. 3000,30000")
    p.add_argument("--only", help="measure only these policies (names separated by |)")
    p.add_argument("--json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.scale, args.threads, args.repeats)))
        return 0
    for spin in filter(None, args.spins.split(",")):
        POLICIES[f"passive, spin {spin}"] = {"OMP_WAIT_POLICY": "PASSIVE",
                                             "GOMP_SPINCOUNT": spin}
    rows = []
    print(f"student, 1280x800 view at x{args.scale:g}, {args.threads} threads; best of "
          f"{args.repeats} warm refines; load: {args.load} busy processes\n")
    print("| policy | idle: cold / warm (s) | loaded: cold / warm (s) | slowdown (warm) |")
    print("|---|---|---|---|")
    only = args.only.split("|") if args.only else list(POLICIES)
    for policy in [name for name in POLICIES if name in only]:
        idle = measure(policy, args)
        with competing_load(args.load):
            loaded = measure(policy, args)
        slowdown = loaded["best_warm_s"] / idle["best_warm_s"]
        rows.append({"policy": policy, "idle": idle, "loaded": loaded, "slowdown": slowdown})
        print(f"| {policy} | {idle['cold_s']:.2f} / {idle['best_warm_s']:.2f} | "
              f"{loaded['cold_s']:.2f} / {loaded['best_warm_s']:.2f} | {slowdown:.1f}x |",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scale": args.scale, "threads": args.threads, "repeats": args.repeats,
                       "load": args.load, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
