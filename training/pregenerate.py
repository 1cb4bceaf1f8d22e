"""Degrade photos once, ahead of training, for machines too slow to degrade while they train.

    python -m training.pregenerate --photos ../shared/data/photos --draws 8 --out degraded/
    python -m training.train --pregenerated degraded/ ...

Each photo is degraded whole, `--draws` times, at random scales in [--min-scale, --max-scale]
(the same degradation, `training.degradation`, seeded by --seed, photo and draw). The LR images
are written as PNG beside an index (index.json: LR file, its HR photo, the exact scale); training
then crops patches from these pairs (`training.data.PregeneratedSource`), which costs a crop and
a gather instead of a blur, noise and a JPEG round trip per sample. The HR photos are read
where they are, not copied.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ddir_zoom.imaging.io import load_photo, save_photo, write_text_atomic
from training.data import IMAGE_SUFFIXES
from training.degradation import degrade


def pregenerate(photos: list[Path], out: Path, draws: int, scales: tuple[float, float],
                seed: int = 0) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for photo_path in tqdm(photos, unit="photo"):
        hr = load_photo(photo_path).rgb
        for draw in range(draws):
            digest = hashlib.sha256(f"{seed}:{photo_path.name}:{draw}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            scale = float(rng.uniform(*scales))
            if min(hr.shape[:2]) / scale < 56:  # too small for a 48-pixel patch and margin
                continue
            lr, params = degrade(hr, scale, rng)
            name = f"{photo_path.stem}_{draw:02d}.png"
            save_photo(out / name, lr)
            index.append({"lr": name, "hr": str(photo_path.resolve()), "scale": scale,
                          "params": params.as_dict()})
    write_text_atomic(out / "index.json", json.dumps(index, indent=1))
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pregenerate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", action="append", required=True, metavar="DIR")
    parser.add_argument("--out", required=True)
    parser.add_argument("--draws", type=int, default=8, help="degraded versions per photo")
    parser.add_argument("--min-scale", type=float, default=1.5)
    parser.add_argument("--max-scale", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    photos = sorted(p for folder in args.photos for p in Path(folder).rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES)
    index = pregenerate(photos, Path(args.out), args.draws, (args.min_scale, args.max_scale),
                        args.seed)
    print(f"{len(index)} degraded pairs from {len(photos)} photos in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
