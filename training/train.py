"""Train DDIR or LIIF with the paper's recipe, every knob on the command line.

Recipe (PAPER.md): 48x48 LR patches, 2304 query pixels each, batch 16, Adam 2e-4 halved at
regular steps, random flips and transpose, batches mixing scales. DDIR's loss is
L1(SR, HR) + L1(deformation, HR - bicubic_up(LR)) in the normalised range; LIIF's is the first
term. Data sources mix in one run (see `training.data`).

Examples:
  # the compact DDIR shipped in resources/weights (see its model card)
  python -m training.train --model ddir --preset compact \\
      --city100 ../shared/data/city100_iphonex --photos ../shared/data/photos \\
      --iterations 40000 --out runs/ddir_compact
  # the paper's model on the RealArbiSR dataset
  python -m training.train --model ddir --preset paper --realarbisr /data/RealArbiSR \\
      --iterations 75000 --out runs/ddir_paper
  # continue a run
  python -m training.train --resume runs/ddir_compact/last.pt

A run folder holds last.pt (the whole training state, loaded with weights_only=True), best.pt's
weights as best.safetensors (a model file the app and evaluate.py load), and log.jsonl.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ddir_zoom.imaging.io import atomic_output
from ddir_zoom.models import PRESETS, load_checkpoint, make_model, preset_config, save_checkpoint
from ddir_zoom.models.base import ImplicitSR
from training.averaging import WeightAverage
from training.data import (
    CITY100_EFFECTIVE_SCALE,
    CITY100_VALIDATION,
    City100Source,
    Mixture,
    PregeneratedSource,
    RealArbiSRSource,
    ScaleSampler,
    SyntheticSource,
)
from training.degradation import VARIANTS, WIDER_RANGES
from training.distributed import Ranks, any_rank, barrier, from_main, setup, teardown
from training.evaluate import city100_pairs, model_method, score, synthetic_pairs
from training.loader import BatchStream, batch_loader
from training.pretrained import init_from, load_init
from training.tone_loss import ToneLoss


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share lies in [0, 1], got {text}")
    return value


def parse_args(argv: list[str] | None = None, only_given: bool = False) -> argparse.Namespace:
    """The options; with only_given, just those on the command line (no defaults)."""
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=["ddir", "liif"], default="ddir")
    g.add_argument("--preset", choices=list(PRESETS), default="compact")
    g.add_argument("--config", help="a JSON model config instead of a preset")
    g.add_argument("--init", metavar="FILE",
                   help="start from a trained model file: a LIIF (e.g. the official weights, "
                   "python -m training.pretrained) gives both DDIR encoders and the SR decoder; "
                   "a file of the same model and architecture is continued whole; one with "
                   "wider MLPs is narrowed (training.narrow), one with more residual blocks "
                   "shortened (training.shorten), a DDIR with two encoders shared "
                   "(training.share)")
    g.add_argument("--teacher", metavar="FILE",
                   help="distil from a trained model file of the same kind (e.g. the shipped "
                   "paper-size DDIR for a compact student): its outputs on the same LR patches "
                   "become the targets, for --teacher-share of the loss")
    g.add_argument("--teacher-share", type=float, default=1.0,
                   help="weight of the teacher's targets; the HR targets get the rest")
    g = p.add_argument_group("data (mix any of them)")
    g.add_argument("--realarbisr", action="append", default=[], metavar="DIR",
                   help="RealArbiSR-layout root (DIR/Train/HR<scale>, LR<scale>)")
    g.add_argument("--city100", metavar="DIR", help="City100 folder (NNNH/NNNL images)")
    g.add_argument("--city100-scale", type=float, default=CITY100_EFFECTIVE_SCALE,
                   help="effective scale between City100's L and H shots")
    g.add_argument("--photos", action="append", default=[], metavar="DIR",
                   help="folder of HR photos for the synthetic degradation (recursive)")
    g.add_argument("--degradation", choices=list(VARIANTS), default="full",
                   help="stages of the synthetic degradation (ablation; default: all)")
    g.add_argument("--wide-degradation", type=_share, default=0.0, metavar="SHARE",
                   help="share of synthetic samples drawn from the wide ranges "
                   "(training.degradation.WIDE: cameras unlike ours); default 0")
    g.add_argument("--wide-ranges", choices=list(WIDER_RANGES), default="wide",
                   help="which wide ranges that share draws from: wide (WIDE) or soft "
                   "(training.degradation.SOFT: WIDE without its sharp end)")
    g.add_argument("--pregenerated", action="append", default=[], metavar="DIR",
                   help="pairs degraded ahead of training (python -m training.pregenerate)")
    g.add_argument("--mix", default="",
                   help="source weights, e.g. city100=1,synthetic=1 (default: equal)")
    g.add_argument("--min-scale", type=float, default=1.5)
    g.add_argument("--max-scale", type=float, default=4.0)
    g.add_argument("--extra-max-scale", type=float, default=0.0,
                   help="also train at scales from --max-scale up to this (e.g. 8) ...")
    g.add_argument("--extra-share", type=float, default=0.0,
                   help="... for this share of the samples (e.g. 0.2)")
    g = p.add_argument_group("recipe")
    g.add_argument("--iterations", type=int, default=40000)
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--patch", type=int, default=48)
    g.add_argument("--queries", type=int, default=2304)
    g.add_argument("--lr", type=float, default=2e-4)
    g.add_argument("--lr-step", type=int, help="halve the learning rate every N iterations "
                   "(default: a fifth of --iterations, as the paper's 200 of 1000 epochs)")
    g.add_argument("--lr-gamma", type=float, default=0.5)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate, keep and ship an exponential moving average of the weights "
                   "(e.g. 0.995: about the last 200 steps; training.averaging); 0: off, the "
                   "paper's recipe. A resume may switch it on: the average starts there")
    g.add_argument("--tone-loss", type=float, default=0.0, metavar="WEIGHT",
                   help="add the tone-consistency term (training.tone_loss) with this weight "
                   "(0: off, the paper's loss). A resume may change it")
    g.add_argument("--tone-loss-window", type=int, default=ToneLoss.window,
                   help="LR pixels: the side of the block the term measures in each patch")
    g.add_argument("--tone-loss-sigma", type=float, default=ToneLoss.sigma,
                   help="LR pixels: the term's low-pass width (wider than the anchor's: "
                   "see training.tone_loss)")
    g = p.add_argument_group("validation and stopping")
    g.add_argument("--val-every", type=int, default=1000)
    g.add_argument("--val-city100", metavar="DIR",
                   help="City100 folder for validation (default: --city100); scenes "
                   f"{', '.join(CITY100_VALIDATION)} at --city100-scale")
    g.add_argument("--val-synthetic", action="append", default=[], metavar="DIR",
                   help="HR images degraded synthetically for validation")
    g.add_argument("--val-scales", default="2.3,3.7", help="scales for --val-synthetic")
    g.add_argument("--patience", type=int, default=0,
                   help="stop after N validations without improvement (0: never)")
    g.add_argument("--max-hours", type=float, default=0.0,
                   help="stop after this process has trained this long (a resume gets it "
                   "anew; 0: no limit)")
    g = p.add_argument_group("run")
    g.add_argument("--out", default="runs/train", help="run folder")
    g.add_argument("--resume", metavar="FILE", help="continue from a run's last.pt")
    g.add_argument("--device", default="auto")
    g.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    g.add_argument("--workers", type=int, default=0,
                   help="DataLoader worker processes making batches (0: in the training "
                   "process, as a single process always did)")
    g.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast on CUDA (ignored elsewhere: slower on CPUs)")
    if only_given:
        # Every option's own default too (argument_default yields to an explicit default):
        # a resume that was not given --val-every must keep the run's, not take 1000.
        for action in p._actions:
            action.default = argparse.SUPPRESS
    return p.parse_args(argv)


def build_sources(args: argparse.Namespace) -> Mixture:
    scale_range = ScaleSampler(args.min_scale, args.max_scale, args.extra_max_scale,
                               args.extra_share)
    sources = []
    for root in args.realarbisr:
        sources.append(RealArbiSRSource(root))
    if args.city100:
        sources.append(City100Source(args.city100, effective_scale=args.city100_scale,
                                     scale_range=scale_range))
    if args.photos:
        sources.append(SyntheticSource(args.photos, scale_range=scale_range,
                                       degradation=args.degradation,
                                       wide_share=args.wide_degradation,
                                       wide=WIDER_RANGES[args.wide_ranges]))
    for folder in args.pregenerated:
        sources.append(PregeneratedSource(folder))
    weights = {}
    for item in filter(None, args.mix.split(",")):
        name, _, value = item.partition("=")
        weights[name.strip()] = float(value)
    unknown = set(weights) - {s.name for s in sources}
    if unknown:
        raise SystemExit(f"--mix names sources that are not given: {', '.join(sorted(unknown))}")
    return Mixture(sources, [weights.get(s.name, 1.0) for s in sources])


def loss_fn(model: ImplicitSR, batch: dict[str, torch.Tensor],
            teacher: ImplicitSR | None = None, teacher_share: float = 1.0,
            tone: ToneLoss | None = None) -> tuple[torch.Tensor, dict]:
    """The paper's loss in the normalised range (x - 0.5) / 0.5.

    With a teacher (distillation), each term's target is the teacher's output on the same LR
    patch and queries for `teacher_share` of its weight and the paper's target for the rest: a
    student learns the function the stronger model computes, which carries more signal per
    query than one noisy HR pixel. With `tone`, its tone-consistency term is added with its
    weight (`training.tone_loss`), decoded in the same pass.
    """
    coords, cells = batch["coords"], batch["cells"]
    queried = coords.shape[1]
    if tone is not None:
        tone_coords, tone_cells, origins = tone.queries(batch["lr"], cells)
        coords = torch.cat([coords, tone_coords], 1)
        cells = torch.cat([cells, tone_cells], 1)
    out = model(batch["lr"], coords, cells)
    extra = {k: v[:, queried:] for k, v in out.items()}
    out = {k: v[:, :queried] for k, v in out.items()}
    targets = {"rgb": (batch["hr"] - 0.5) / 0.5}
    if "deformation" in out:
        targets["deformation"] = (batch["hr"] - batch["bicubic"]) / 0.5
    taught = {}
    if teacher is not None and teacher_share > 0.0:
        with torch.no_grad():
            taught = teacher(batch["lr"], batch["coords"], batch["cells"])
    loss, parts = 0.0, {}
    for key, name in (("rgb", "sr"), ("deformation", "deformation")):
        if key not in targets:
            continue
        term = F.l1_loss(out[key], targets[key])
        if key in taught:
            term = teacher_share * F.l1_loss(out[key], taught[key]) + \
                (1.0 - teacher_share) * term
        parts[name] = term.item()
        loss = loss + term
    if tone is not None:
        term = tone.term(extra["rgb"], batch["lr"], origins)
        parts["tone"] = term.item()
        loss = loss + tone.weight * term
    return loss, parts


def validate(model: ImplicitSR, val_sets: list[tuple[str, list]]) -> dict[str, float]:
    was_training = model.training
    model.eval()
    results = {}
    with torch.inference_mode():
        for name, pairs in val_sets:
            results[name] = score(pairs, {"model": model_method(model)})["model"]["psnr"]
    model.train(was_training)
    return results


def learning_rate(args: argparse.Namespace, step: int) -> float:
    lr_step = args.lr_step or max(1, args.iterations // 5)
    return args.lr * args.lr_gamma ** (step // lr_step)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m training.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    state = None
    commands = [command]
    if args.resume:
        state = torch.load(args.resume, map_location="cpu", weights_only=True)
        # The run's history: the command that started it, then each resume (a state saved
        # before the history was kept starts it at this resume).
        commands = [*state.get("commands", []), command]
        saved = state["args"]
        # Keep the run's own settings; only stopping, schedule and device knobs may change.
        given = vars(parse_args(argv, only_given=True))
        for key in ("iterations", "lr_step", "patience", "max_hours", "device", "threads",
                    "val_every", "workers", "ema", "tone_loss", "tone_loss_window",
                    "tone_loss_sigma"):
            if key in given:
                saved[key] = given[key]
        # A run saved before an option existed gets that option's default.
        args = argparse.Namespace(**{**vars(parse_args([])), **saved})
        args.resume = str(Path(state["out"]) / "last.pt")
    if args.lr_step is None:
        # Fixed now, so that a resume with another --iterations keeps the schedule.
        args.lr_step = max(1, args.iterations // 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    ranks, device = setup(args.device)
    try:
        return _train(args, state, commands, ranks, device)
    finally:
        teardown(ranks)


def _train(args: argparse.Namespace, state: dict | None, commands: list[str], ranks: Ranks,
           device: torch.device) -> int:
    if args.batch % ranks.world:
        raise SystemExit(f"--batch {args.batch} (the global batch) must be a multiple of the "
                         f"{ranks.world} processes")
    per_rank = args.batch // ranks.world
    out = Path(args.out)
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
    say = print if ranks.main else (lambda *a, **k: None)

    config = json.loads(args.config) if args.config else preset_config(args.model, args.preset)
    torch.manual_seed(args.seed)
    model = make_model(config)
    if args.init and state is None:
        init_from(model, load_init(args.init))
        say(f"initialised from {args.init}", flush=True)
    teacher = None
    if args.teacher:
        teacher, _ = load_checkpoint(args.teacher, device, expect_model=model.name)
        teacher.use_channels_last().requires_grad_(False)
        say(f"distilling from {args.teacher} ({args.teacher_share:g} of the loss)", flush=True)
    rng = np.random.default_rng(args.seed)
    step, best, stale, elapsed = 0, -math.inf, 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step, best, stale, elapsed = state["step"], state["best"], state["stale"], state["elapsed"]
    model = model.to(device)
    model.use_channels_last()
    # Every rank starts from rank 0's weights (they are equal already; this makes it certain).
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                  else None) if ranks.distributed else model
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    if state is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    elif state is not None:  # a packed state (training.resume_pack): the weights alone
        say("resuming without the optimiser's state: Adam starts afresh", flush=True)
    # The average lives on rank 0, which alone validates and saves (every rank's weights agree).
    average = WeightAverage(model, args.ema) if args.ema and ranks.main else None
    if average is not None and state is not None and "ema" in state:
        average.load_state_dict(state["ema"])
    kept = average.model if average is not None else model  # what is validated and saved
    bf16 = args.bf16 and device.type == "cuda"
    if args.bf16 and not bf16:
        say("--bf16 is for CUDA; training in float32 here", flush=True)

    say(f"{model.name} {config} | {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
        f"parameters | {device} | {torch.get_num_threads()} threads | global batch "
        f"{args.batch} = {ranks.world} process(es) x {per_rank} | {args.workers} loader "
        f"worker(s){' | bf16' if bf16 else ''}", flush=True)
    data = build_sources(args)
    say("sources: " + ", ".join(f"{s.name} ({w:.2f})" for s, w in
                                zip(data.sources, data.weights, strict=True)), flush=True)
    val_sets = []
    if ranks.main:
        val_city = args.val_city100 or args.city100
        if val_city:
            val_sets.append((f"city100_x{args.city100_scale:g}",
                             city100_pairs(val_city, CITY100_VALIDATION, args.city100_scale)))
        for folder in args.val_synthetic:
            for s in (float(v) for v in args.val_scales.split(",")):
                val_sets.append((f"{Path(folder).name}_x{s:g}", synthetic_pairs(folder, s)))

    tone = ToneLoss(args.tone_loss, args.tone_loss_window, args.tone_loss_sigma) \
        if args.tone_loss else None
    if tone is not None:
        say(f"tone-consistency term: weight {tone.weight:g}, {tone.window} x {tone.window} "
            f"block, sigma {tone.sigma:g}", flush=True)
    deformation = model.name == "ddir"
    in_process = args.workers == 0 and not ranks.distributed
    if not in_process:
        stream = BatchStream(data, per_rank, args.patch, args.queries, deformation, args.seed,
                             ranks.rank, step)
        batches = batch_loader(stream, args.workers, pin_memory=device.type == "cuda")

    def next_batch() -> dict[str, torch.Tensor]:
        if in_process:
            return data.batch(rng, args.batch, args.patch, args.queries, deformation)
        return next(batches)

    def save_state() -> None:
        snapshot = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    **({"ema": average.state_dict()} if average is not None else {}),
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    "step": step, "best": best, "stale": stale, "elapsed": elapsed,
                    "args": vars(args), "out": str(out), "commands": commands}
        with atomic_output(out / "last.pt") as handle:  # a crash keeps the previous state
            torch.save(snapshot, handle)

    def checkpoint_info(scores: dict[str, float] | None) -> dict:
        top = max(args.max_scale, args.extra_max_scale)
        return {"data": [s.name for s in data.sources], "command": commands[0],
                **({"resumed": commands[1:]} if len(commands) > 1 else {}),
                **({"init": Path(args.init).name} if args.init else {}),
                **({"teacher": Path(args.teacher).name, "teacher_share": args.teacher_share}
                   if args.teacher else {}),
                "train_scales": [args.min_scale, top],
                "iterations": step, "wall_time_s": round(elapsed),
                **({"ema": args.ema} if average is not None else {}),
                **({"tone_loss": {"weight": tone.weight, "window": tone.window,
                                  "sigma": tone.sigma}} if tone is not None else {}),
                **({"validation_psnr_y": scores} if scores is not None else {}),
                "seed": args.seed,
                "machine": f"{platform.machine()} {device}, {torch.get_num_threads()} threads, "
                           f"{ranks.world} process(es)"}

    # Ctrl+C or SIGTERM on any rank: every rank finishes the step, rank 0 saves, all exit;
    # --resume continues (with any number of processes).
    interrupted: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: interrupted.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    log = open(out / "log.jsonl", "a") if ranks.main else None  # noqa: SIM115 - whole run
    model.train()
    bar = tqdm(total=args.iterations, initial=step, dynamic_ncols=True, disable=not ranks.main,
               mininterval=1.0 if sys.stderr.isatty() else 60.0)
    window: list[float] = []
    started = time.perf_counter() - elapsed
    first_step, run_started = step, time.perf_counter()
    stop_reason = "iterations done"
    validated: tuple[int, dict[str, float]] = (-1, {})  # the last validation's step and scores
    while step < args.iterations:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(args, step)
        batch = {k: v.to(device, non_blocking=True) for k, v in next_batch().items()}
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss, parts = loss_fn(net, batch, teacher, args.teacher_share, tone)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update(model)
        step += 1
        window.append(loss.item())
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(window[-50:]):.4f}",
                            lr=f"{optimizer.param_groups[0]['lr']:.1e}")
        elapsed = time.perf_counter() - started
        if step % args.val_every == 0 or step == args.iterations:
            give_up = 0.0
            if ranks.main:
                scores = validate(kept, val_sets) if val_sets else {}
                validated = (step, scores)
                mean = float(np.mean(list(scores.values()))) if scores else \
                    -float(np.mean(window))
                improved = mean > best
                record = {"step": step, "loss": float(np.mean(window)), **parts,
                          "lr": optimizer.param_groups[0]["lr"], "val_psnr": scores,
                          "elapsed_s": round(elapsed, 1), "improved": improved,
                          "processes": ranks.world}
                log.write(json.dumps(record) + "\n")
                log.flush()
                tqdm.write(json.dumps(record))
                if improved:
                    best, stale = mean, 0
                    save_checkpoint(kept, out / "best.safetensors", checkpoint_info(scores))
                else:
                    stale += 1
                save_state()
                give_up = float(bool(args.patience and stale >= args.patience))
            window = []
            if from_main(ranks, give_up, device):
                stop_reason = f"no improvement in {args.patience} validations"
                break
        # This process's own time: a resume in a later session gets its --max-hours anew.
        over_time = bool(args.max_hours and
                         time.perf_counter() - run_started > args.max_hours * 3600)
        if any_rank(ranks, bool(interrupted) or over_time, device):
            stop_reason = (f"time limit of {args.max_hours} h" if over_time else
                           f"interrupted; continue with: python -m training.train --resume "
                           f"{out / 'last.pt'}")
            if ranks.main:
                save_state()
            break
    bar.close()
    if log is not None:
        log.close()
    if ranks.main:
        # The model where the run stopped (its average with --ema), to ship or compare with
        # best.safetensors; validated only if the last step was.
        save_checkpoint(kept, out / "last.safetensors", checkpoint_info(
            validated[1] if validated[0] == step else None))
    for s, handler in previous.items():
        signal.signal(s, handler)
    barrier(ranks)
    digest = hashlib.sha256(b"".join(v.detach().cpu().numpy().tobytes()
                                     for v in model.state_dict().values())).hexdigest()[:16]
    if ranks.distributed:
        # One write, so that the ranks' lines do not interleave within a line.
        print(f"rank {ranks.rank}: weights sha256 {digest}\n", end="", flush=True)
    rate = (step - first_step) * args.batch / max(1e-9, time.perf_counter() - run_started)
    say(f"stopped at step {step}: {stop_reason}; best validation PSNR-Y {best:.3f} dB; "
        f"{elapsed / 3600:.2f} h; {rate:.2f} samples/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
