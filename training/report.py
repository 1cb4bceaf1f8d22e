"""Markdown from evaluation JSON and training runs: the README's quality table and model cards.

  python -m training.report quality benchmarks/results/quality.json
      one table (dataset and scale by method, PSNR-Y / SSIM), the tone errors, and the bar:
      on every row DDIR's PSNR-Y above each method of --against, its tones kept.
  python -m training.report card resources/weights/ddir_paper.safetensors \\
      --log runs/ddir_paper/log.jsonl --quality benchmarks/results/quality.json --name DDIR
      a model card: the checkpoint's own record (data, command, iterations, wall time), the
      validation history of its run, and its measured table next to the other methods.
  python -m training.report compare --shipped benchmarks/results/quality_ddir.json \\
      benchmarks/results/tone_ddir.json --candidate quality_new.json tone_new.json
      a candidate against the shipped model, row by row (PSNR-Y and tones): exit 0 only when it
      was measured on every row and photo set the shipped model was, gains on every row and
      keeps its tones everywhere (`--tolerance 0.10`: loses no more than 0.10 dB on any row, the
      rule for a candidate trained for other cameras, which camera_sweep --compare judges first).
  python -m training.report relabel quality_new.json --file resources/weights/ddir_paper.safetensors
      a model scored as a scratch copy, then shipped: its "file" becomes the shipped file and
      "evaluated_as" the copy, only if the two hold the same weights, architecture and inference
      settings (training.ship.differences); the JSON is rewritten in place.

Nothing here computes a figure: every number comes from evaluate.py's JSON, the training log or
the checkpoint's header.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ddir_zoom.imaging.io import write_text_atomic
from ddir_zoom.models.checkpoint import CheckpointError, read_header
from training.ship import differences

REAL = "(real)"


def merge(reports: list[dict]) -> dict:
    """One report from evaluations run separately (say, the baselines while a model trained):
    tables of the same dataset and scale are joined, methods in the order first seen."""
    merged: dict = {"models": {}, "results": [], "tone": []}
    rows: dict[tuple[str, float], dict] = {}
    tones: dict[str, dict] = {}
    for report in reports:
        merged["models"].update(report.get("models", {}))
        for result in report["results"]:
            key = (result["dataset"], result["scale"])
            if key not in rows:
                rows[key] = {"dataset": result["dataset"], "scale": result["scale"], "table": {}}
                merged["results"].append(rows[key])
            rows[key]["table"].update(result["table"])
        for entry in report.get("tone", []):
            if entry["folder"] not in tones:
                tones[entry["folder"]] = {"folder": entry["folder"], "table": {}}
                merged["tone"].append(tones[entry["folder"]])
            tones[entry["folder"]]["table"].update(entry["table"])
    return merged


def _rows(report: dict) -> list[tuple[str, dict]]:
    return [(f"{r['dataset']} x{r['scale']:g}", r["table"]) for r in report["results"]]


def quality_table(report: dict, methods: list[str] | None = None) -> str:
    """Rows dataset x scale, a PSNR-Y / SSIM column per method, the best PSNR in bold (a
    method not measured on a row: a dash)."""
    if methods is None:
        methods = []
        for result in report["results"]:
            methods += [m for m in result["table"] if m not in methods]
    lines = ["| dataset | images | " + " | ".join(methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for title, table in _rows(report):
        best = max(table[m]["psnr"] for m in methods if m in table)
        cells = []
        for m in methods:
            if m not in table:
                cells.append("-")
                continue
            psnr = f"{table[m]['psnr']:.2f}"
            psnr = f"**{psnr}**" if table[m]["psnr"] == best else psnr
            cells.append(f"{psnr} / {table[m]['ssim']:.4f}")
        images = next(iter(table.values()))["images"]
        lines.append(f"| {title} | {images} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_check(report: dict, ddir: str = "DDIR", against: tuple[str, ...] = ("bicubic",)
              ) -> list[tuple[str, bool]]:
    """The fidelity issue's bar, row by row: DDIR's PSNR-Y above every method of `against`
    (bicubic, the shipped and the official LIIF) and its tones kept. (statement, holds)."""
    checks = []
    for title, table in _rows(report):
        present = [m for m in against if m in table]
        if ddir not in table or not present:
            continue
        d = table[ddir]["psnr"]
        holds = all(d > table[m]["psnr"] for m in present)
        tone = table[ddir].get("tone_ok", True)
        others = ", ".join(f"{m} {table[m]['psnr']:.2f}" for m in present)
        checks.append((f"{title}: {ddir} {d:.2f} > {others}"
                       + ("" if tone else f" ({ddir}'s tones shifted)"), holds and tone))
    return checks


def tone_cell(r: dict) -> str:
    """One method's tone result: MAD / contrast change in levels, flagged when shifted. A row
    with a truth is judged against it (`tone.truth_check`): the zoom's error against the truth,
    then the LR's own; a row scored before that, or a photo, against the LR."""
    if "tone_mad_255" not in r or "tone_ok" not in r:
        return "not measured"
    flag = "" if r["tone_ok"] else " **shifted**"
    if "truth_tone_mad_255" in r:
        return (f"{r['truth_tone_mad_255']:.2f} / {r['truth_tone_contrast_255']:.2f} vs truth "
                f"(LR {r['lr_truth_tone_mad_255']:.2f} / "
                f"{r['lr_truth_tone_contrast_255']:.2f}){flag}")
    contrast = r.get("tone_contrast_255")
    second = f"{contrast:.2f}" if contrast is not None else f"gain {r['tone_gain_error']:.3f}"
    return f"{r['tone_mad_255']:.2f} / {second}{flag}"


def tone_markdown(report: dict) -> str:
    """Worst tone error per method: over each evaluation set (against the truth, next to the LR
    input's own; against the LR input in results scored before) and over the tone check's
    photos and scales (against the photo)."""
    methods: list[str] = []
    for table in [r["table"] for r in report["results"]] + [t["table"] for t in
                                                            report.get("tone", [])]:
        methods += [m for m in table if m not in methods]
    lines = ["| set | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]

    for title, table in _rows(report):
        lines.append(f"| {title} | " + " | ".join(tone_cell(table[m]) if m in table else "-"
                                                   for m in methods) + " |")
    for entry in report.get("tone", []):
        scales = ", ".join(f"x{s:g}" for s in next(iter(entry["table"].values()))["scales"])
        lines.append(f"| photos of {Path(entry['folder']).name}, {scales} | "
                     + " | ".join(tone_cell(entry["table"][m]) if m in entry["table"] else "-"
                                  for m in methods) + " |")
    return "\n".join(lines)


def per_image_check(report: dict, ddir: str = "DDIR", baseline: str = "bicubic"
                    ) -> list[tuple[str, bool]]:
    """Row by row, on how many of its images `ddir` beats `baseline` by PSNR-Y, and the image
    where it gains least: an average can hide a photo made worse. Rows where either was scored
    without per-image figures are left out. (statement, every image gains)."""
    checks = []
    for title, table in _rows(report):
        mine = table.get(ddir, {}).get("per_image_psnr")
        theirs = table.get(baseline, {}).get("per_image_psnr")
        if not mine or not theirs or set(mine) != set(theirs):
            continue
        gains = {name: mine[name] - theirs[name] for name in mine}
        least = min(gains, key=gains.get)
        above = sum(g > 0 for g in gains.values())
        checks.append((f"{title}: {ddir} above {baseline} on {above} of {len(gains)} images, "
                       f"least {gains[least]:+.2f} dB ({least})", above == len(gains)))
    return checks


def quality_markdown(report: dict, ddir: str = "DDIR",
                     against: tuple[str, ...] = ("bicubic",)) -> str:
    lines = [quality_table(report) if report["results"] else "", "",
             "Tone error, worst image: MAD / contrast change, in 8-bit levels (`training/tone.py`:"
             " on an evaluation row against the truth, shifted when a zoom is further from it"
             " than the LR input by more than 1.0 / 1.0 on any image; on photos against the "
             "photo, tolerance 1.0 / 1.0):", "", tone_markdown(report), "", "The bar:", ""]
    for statement, holds in bar_check(report, ddir, against):
        lines.append(f"- {statement}: {'holds' if holds else '**does not hold**'}")
    per_image = per_image_check(report, ddir)
    if per_image:
        lines += ["", "Image by image:", ""]
        lines += [f"- {statement}" + ("" if every else " **(not every image)**")
                  for statement, every in per_image]
    return "\n".join(lines)


def model_card(checkpoint: str | Path, name: str,
               log: str | Path | list[str | Path] | None,
               quality: dict | None, notes: str = "") -> str:
    config, info = read_header(checkpoint)
    lines = [f"# {Path(checkpoint).name}", "", f"{name}, `{json.dumps(config)}`.", ""]
    if "blend" in info:  # training.blend: the record of each model it was made from
        blend = info["blend"]
        weight = blend.get("weight")
        lines += [f"A blend of two models' weights (`python -m training.blend`): "
                  f"{1 - weight:g} x A + {weight:g} x B." if isinstance(weight, int | float)
                  else "A blend of two models' weights (`python -m training.blend`).", ""]
        for label in ("a", "b"):
            part = blend.get(label, {})
            lines += [f"## {label.upper()}: `{part.get('file', 'not recorded')}` (its name when "
                      "blended)", "", *_run_record(part)]
    else:
        lines += _run_record(info)
    logs = [log] if isinstance(log, (str, Path)) else list(log or [])
    # Which model each log's rows lead to: the last log is this file's own run (for a blend,
    # B's run, and the log before it A's), which may have trained on after writing it.
    owners: dict[int, tuple[object, str]] = {}
    if logs and "blend" in info:
        owners[len(logs) - 1] = (info["blend"].get("b", {}).get("iterations"), "(after B)")
        if len(logs) > 1:
            owners[len(logs) - 2] = (info["blend"].get("a", {}).get("iterations"), "(after A)")
    elif logs:
        owners[len(logs) - 1] = (info.get("iterations"), "(after this file)")
    for index, part in enumerate(logs):
        # One table per log: a run continued from another (--init) counts its steps afresh.
        lines += ["", f"Validation during the run (PSNR-Y, dB; from `{part}`):", ""]
        records = [json.loads(line) for line in Path(part).read_text().splitlines() if line]
        keys = list(records[0]["val_psnr"]) if records else []
        lines += ["| step | lr | train loss | " + " | ".join(keys) + " | wall time | best |",
                  "|---|---|---|" + "---|" * len(keys) + "---|---|"]
        own_step, after = owners.get(index, (None, ""))
        for r in records:
            scores = " | ".join(f"{r['val_psnr'][k]:.2f}" for k in keys)
            best = "yes" if r["improved"] else ""
            if isinstance(own_step, int) and r["step"] > own_step:
                best = f"{best} {after}".strip()
            lines.append(f"| {r['step']} | {r['lr']:g} | {r['loss']:.4f} | {scores} | "
                         f"{_hours(r['elapsed_s'])} | {best} |")
    if quality is not None:
        lines += ["", "Measured with `training/evaluate.py` (PSNR-Y / SSIM):", "",
                  quality_table(quality)]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def _run_record(info: dict) -> list[str]:
    """A run's record in a model card: its data, steps, time, machine, seed and commands."""
    lines = ["| | |", "|---|---|",
             f"| training data | {', '.join(info.get('data', [])) or 'not recorded'} |",
             f"| iterations (this checkpoint) | {info.get('iterations', 'not recorded')} |",
             f"| training wall time to this checkpoint | "
             f"{_hours(info['wall_time_s']) if 'wall_time_s' in info else 'not recorded'} |",
             f"| machine | {info.get('machine', 'not recorded')} |",
             f"| seed | {info.get('seed', 'not recorded')} |", "",
             *([f"Started from `{info['init']}` (`--init`).", ""] if "init" in info else []),
             # A file written before runs kept their history records its writer's command.
             ("Command of the process that wrote this checkpoint (recorded in it):"
              if "--resume" in info.get("command", "") else
              "Command that started the run (recorded in the checkpoint):"), "",
             "```bash", info.get("command", "not recorded"), "```"]
    if info.get("resumed"):
        lines += ["", "Resumed with:", "", "```bash", *info["resumed"], "```"]
    return lines


def compare(shipped: dict, candidate: dict, method: str = "DDIR",
            candidate_method: str | None = None, tolerance: float = 0.0) -> tuple[str, bool]:
    """The shipping decision, row by row: the candidate's PSNR-Y against the shipped model's on
    every row the shipped model was measured on, and the candidate's tone check on each of its
    rows and photo sets. (markdown, ship): ship only when the candidate was measured on every
    row and photo set the shipped model was, gains on every row (with `tolerance` dB: loses no
    more than that on any row) and shifts no tone.

    `tolerance` is for a candidate that is trained for cameras the standard rows do not hold (a
    wider degradation, judged first by `camera_sweep.compare`): it may give up that much on
    them (README, Quality: 0.10 dB), fixed before the candidate is scored."""
    cand = candidate_method or method
    old = {title: table[method] for title, table in _rows(shipped) if method in table}
    new = {title: table[cand] for title, table in _rows(candidate) if cand in table}
    old_photos = {e["folder"] for e in shipped.get("tone", []) if method in e["table"]}
    new_photos = {e["folder"]: e["table"][cand] for e in candidate.get("tone", [])
                  if cand in e["table"]}

    # The rule, in one place: by default every row must gain; with a tolerance, none may lose
    # more than it.
    if tolerance == 0:
        def falls_short(change: float) -> bool:
            return change <= 0
        flag, kept, lost = " **no gain**", "gains on all", "without gain"
    else:
        def falls_short(change: float) -> bool:
            return change < -tolerance
        flag = f" **loses > {tolerance:.2f}**"
        kept, lost = f"within {tolerance:.2f} dB on all", f"losing more than {tolerance:.2f} dB"

    lines = ["| row | shipped | candidate | change | candidate's tones (MAD / contrast) |",
             "|---|---|---|---|---|"]
    missing, worse, shifted = 0, 0, 0
    for title in list(old) + [t for t in new if t not in old]:
        if title not in new:
            missing += 1
            lines.append(f"| {title} | {old[title]['psnr']:.2f} | **not measured** | - | - |")
            continue
        r = new[title]
        shifted += not r.get("tone_ok", True)
        missing += "tone_ok" not in r  # a row whose tones were not checked is no evidence
        if title in old:
            change = r["psnr"] - old[title]["psnr"]
            short = falls_short(change)
            worse += short
            lines.append(f"| {title} | {old[title]['psnr']:.2f} | {r['psnr']:.2f} | "
                         f"{change:+.2f}{flag if short else ''} | {tone_cell(r)} |")
        else:
            lines.append(f"| {title} | - | {r['psnr']:.2f} | - | {tone_cell(r)} |")
    for folder in sorted(old_photos | set(new_photos)):
        name = f"photos of {Path(folder).name}"
        if folder not in new_photos:
            missing += 1
            lines.append(f"| {name} | - | - | - | **not measured** |")
            continue
        shifted += not new_photos[folder]["tone_ok"]
        lines.append(f"| {name} | - | - | - | {tone_cell(new_photos[folder])} |")
    ship = not (missing or worse or shifted) and bool(old)
    verdict = (f"Ship: {kept} {len(old)} rows, tones kept." if ship else
               f"Do not ship: {worse} row(s) {lost}, {shifted} shifted tone(s), "
               f"{missing} row(s) or photo set(s) not measured"
               + ("" if old else ", nothing to compare with") + ".")
    return "\n".join([*lines, "", verdict]), ship


def relabel(report: dict, method: str, shipped: str) -> dict:
    """`report` with `method` recorded as the model file `shipped`, which must render as the
    file it was scored as (ValueError otherwise)."""
    models = report.get("models", {})
    if method not in models:
        raise ValueError(f"no model {method!r} in the report (it has {sorted(models)})")
    scored = models[method]["file"]
    if Path(scored).resolve() == Path(shipped).resolve():
        return report
    found = differences(scored, shipped)
    if found:
        raise ValueError(f"{shipped} is not the model scored as {scored}: " + "; ".join(found[:5]))
    entry = dict(models[method], file=str(shipped),
                 evaluated_as=f"{scored} (the same weights, architecture and inference settings, "
                 "checked by training.report relabel)")
    return dict(report, models=dict(models, **{method: entry}))


def load(files: list[str]) -> dict:
    """evaluate.py JSON files, merged."""
    return merge([json.loads(Path(f).read_text()) for f in files])


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality", help="the quality table and the bar check")
    q.add_argument("json", nargs="+", help="evaluate.py JSON files, merged")
    q.add_argument("--ddir", default="DDIR")
    q.add_argument("--against", default="bicubic,LIIF",
                   help="methods DDIR must beat on every row, comma-separated")
    q.add_argument("-o", "--output", help="write the merged JSON here")
    c = sub.add_parser("card", help="a model card")
    c.add_argument("checkpoint")
    c.add_argument("--name", required=True)
    c.add_argument("--log", nargs="+", help="the run's log.jsonl; several for a run continued "
                   "in stages (a table each), the file's own run last (for a blend: A's run, "
                   "then B's)")
    c.add_argument("--quality", nargs="+", help="evaluate.py JSON files, merged")
    c.add_argument("--notes", help="a markdown file appended to the card (the run's history)")
    c.add_argument("-o", "--output")
    v = sub.add_parser("compare", help="a candidate against the shipped model, row by row; "
                       "exit 1 unless it gains on every row and keeps its tones")
    v.add_argument("--shipped", nargs="+", required=True,
                   help="evaluate.py JSON files of the shipped model, merged")
    v.add_argument("--candidate", nargs="+", required=True,
                   help="evaluate.py JSON files of the candidate, merged")
    v.add_argument("--method", default="DDIR", help="the method's name in the shipped JSON")
    v.add_argument("--candidate-method", help="its name in the candidate's JSON (default: the "
                   "same)")
    v.add_argument("--tolerance", type=float, default=0.0, metavar="DB",
                   help="a row may lose up to DB dB (default 0: every row must gain); for a "
                   "candidate trained for other cameras, judged first by camera_sweep --compare")
    r = sub.add_parser("relabel", help="record a model scored as a scratch copy under the file "
                       "it shipped as (checked to render the same)")
    r.add_argument("json", nargs="+", help="evaluate.py JSON files, each rewritten in place")
    r.add_argument("--file", required=True, help="the shipped model file")
    r.add_argument("--method", default="DDIR")
    args = parser.parse_args(argv)
    if args.command == "relabel":
        try:
            reports = {f: relabel(json.loads(Path(f).read_text()), args.method, args.file)
                       for f in args.json}
        except (ValueError, CheckpointError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for f, rep in reports.items():  # written only once every file checked out
            write_text_atomic(f, json.dumps(rep, indent=2))  # in place: never half-written
            print(f"{f}: {args.method} = {args.file}")
        return 0
    if args.command == "compare":
        if not 0 <= args.tolerance < 1:
            parser.error("--tolerance must be at least 0 and below 1 dB")
        text, ship = compare(load(args.shipped), load(args.candidate), args.method,
                             args.candidate_method, args.tolerance)
        print(text)
        return 0 if ship else 1
    if args.command == "quality":
        against = tuple(m for m in args.against.split(",") if m)
        report = load(args.json)
        if args.output:
            write_text_atomic(args.output, json.dumps(report, indent=2))
        print(quality_markdown(report, args.ddir, against))
        return 0
    quality = load(args.quality) if args.quality else None
    notes = Path(args.notes).read_text() if args.notes else ""
    text = model_card(args.checkpoint, args.name, args.log, quality, notes)
    if args.output:
        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
