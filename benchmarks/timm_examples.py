"""One measured example per supported timm model class: untrained, CPU, PSNR at a shallow and a deep tap.

    python benchmarks/timm_examples.py [--steps 150] [--image cat]

Each model is built untrained from its timm name (no download), and the
bundled image is reconstructed from a shallow and a deep tap with vitrep's
defaults (the calibrated schedule of the family its adapter names, Adam).
Prints the README's table and writes benchmarks/results/timm_examples.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import record  # noqa: E402  (benchmarks/record.py)
from vitrep.config import make_config  # noqa: E402
from vitrep.images import prepare, sample_path  # noqa: E402
from vitrep.models.registry import make_ref  # noqa: E402
from vitrep.reconstruction import reconstruct  # noqa: E402

# (timm class, example name, shallow tap, deep tap)
EXAMPLES = [
    ("VisionTransformer (DINO)", "timm:vit_small_patch16_224.dino", "1", "12"),
    ("VisionTransformer (CLIP image tower)", "timm:vit_base_patch32_clip_224.openai", "1", "12"),
    ("VisionTransformer (DINOv2, 4 registers, layer scale)", "timm:vit_small_patch14_reg4_dinov2.lvd142m", "1", "12"),
    ("Eva (EVA-02, rotary embedding)", "timm:eva02_tiny_patch14_224.mim_in22k", "1", "12"),
    ("MlpMixer (ResMLP)", "timm:resmlp_12_224", "1", "12"),
    ("MlpMixer (gMLP)", "timm:gmlp_ti16_224", "1", "30"),
    ("ResNet", "timm:resnet50", "layer1", "layer4"),
    ("ConvNeXt", "timm:convnext_tiny", "stage-1", "stage-4"),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--image", default="cat")
    ap.add_argument("--json", default=str(record.result_path("timm_examples.json")))
    a = ap.parse_args(argv)
    rows, machine = [], record.machine()
    print(f"{record.describe(machine)}; {a.steps} steps, the bundled {a.image}")
    print("| timm class | example | input | tap | m_g/m_r | PSNR dB | s |")
    print("|---|---|---|---|---|---|---|")
    for cls, name, *taps in EXAMPLES:
        ref = make_ref(name)
        img = prepare(sample_path(a.image), ref.input_size)
        for tap in taps:
            t0 = time.perf_counter()
            r = reconstruct(img, make_config(ref, tap, steps=a.steps))
            secs = time.perf_counter() - t0
            ratio = r.final["embedding_distance"] / r.baseline["embedding_distance"]
            row = dict(cls=cls, model=name, input=ref.input_size, tap=r.config.tap, ratio=round(ratio, 3),
                       psnr=round(r.final["psnr"], 1), seconds=round(secs, 1), status=r.status,
                       optimizer=r.config.optimizer, lr_start=r.config.lr_start)
            rows.append(row)
            print(f"| {cls} | `{name}` | {ref.input_size} | {row['tap']} | {row['ratio']:.3f} | {row['psnr']:.1f} "
                  f"| {secs:.0f} |", flush=True)
    Path(a.json).write_text(json.dumps(dict(machine=machine, torch=torch.__version__, steps=a.steps, image=a.image,
                                            rows=rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
