"""Item text encoders on warm and cold-start items: id-only vs bag of words vs MiniLM.

Uses the "cold_items" split: 10% of items are held out of training entirely, the
other interactions are split 80/20 at random (seed 42). Reports hit rate@10/@100
(seen items excluded) and rating RMSE for warm and cold test items, training
examples/s and the peak resident memory of each variant (each runs in its own
process). "MiniLM fine-tuned" is the two-stage recipe: the "MiniLM frozen" run,
then `FINE_TUNE_EPOCHS` more epochs from its weights (`train.init_from`) with the
top transformer layer of MiniLM training in the candidate tower
(`model.text_encoder_mode=finetune_top_n`, backbone learning rate 0.1x), which
costs a transformer pass over each batch's distinct items per step. Its
examples/s are those of the fine-tuning stage.

Usage:
    python benchmarks/text_encoders.py --data-dir ../shared/data/ml-100k [--out docs]
    # A quick smoke run on the tiny synthetic preset, one variant, one epoch:
    python benchmarks/text_encoders.py --preset tiny --only "MiniLM fine-tuned" \
        --set train.epochs=1 --out /tmp/text_encoders
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from reporting import write_csv

from mtl_tf.data.movielens_schema import ITEM_GENRES, MOVIELENS_SCHEMA

FINE_TUNE_EPOCHS = 2
FROZEN = ["model.text_encoder=minilm"]
# The id-only item tower reads no item feature: no text encoder, and a schema
# without the genres (`--set schema.features=[...]`).
WITHOUT_GENRES = "schema.features=" + json.dumps(
    [f.to_dict() for f in MOVIELENS_SCHEMA.without([ITEM_GENRES]).features])
# Each variant is a list of training stages (config overrides); a later stage
# starts from the weights of the one before it.
VARIANTS = {
    "id only": [["model.text_encoder=none", WITHOUT_GENRES]],
    "bag of words": [["model.text_encoder=bow"]],
    "MiniLM frozen": [FROZEN],
    "MiniLM fine-tuned": [FROZEN, FROZEN + [
        "model.text_encoder_mode=finetune_top_n", "model.text_encoder_train_layers=1",
        f"train.epochs={FINE_TUNE_EPOCHS}"]],
}
COLUMNS = ["data", "encoder", "warm hr@10", "warm hr@100", "cold hr@10",
           "cold hr@100", "warm rmse", "cold rmse", "train ex/s", "peak MB"]


def run_variant(source: list[str], stages: list[list[str]], extra: list[str],
                preset: str = "default") -> dict:
    """Trains one variant's stages in this process; returns the last stage's
    metrics and costs. `extra` overrides apply to every stage."""
    import mtl_tf  # noqa: F401
    from mtl_tf.config import apply_overrides, get_preset
    from mtl_tf.experiment import run

    with tempfile.TemporaryDirectory() as work_dir:
        previous = None
        for index, overrides in enumerate(stages):
            start = [f"train.init_from={previous}"] if previous else []
            config = apply_overrides(get_preset(preset), source + [
                "data.split=cold_items", "data.seed=42"] + overrides + start + extra)
            previous = Path(work_dir) / f"stage_{index}"
            result = run(config, previous, export=False, verbose=0)
    metrics = result["metrics"]
    return {"warm hr@10": metrics["warm_hit_rate_at_10"],
            "warm hr@100": metrics["warm_hit_rate_at_100"],
            "cold hr@10": metrics["cold_hit_rate_at_10"],
            "cold hr@100": metrics["cold_hit_rate_at_100"],
            "warm rmse": metrics["warm_rating_rmse"],
            "cold rmse": metrics["cold_rating_rmse"],
            "train ex/s": result["training"]["examples_per_second"],
            "peak MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def compare_to_id_only(rows: list[dict]) -> list[dict]:
    """Per text variant: warm hit rate@10 and examples/s as ratios to the id-only
    row of the same data, cold hit rate@100 next to id-only's, and the checks of
    the cold-start claim (cold above id-only, warm at most 2% below; frozen
    training at >= 50% of id-only's examples/s)."""
    comparison = []
    for row in rows:
        base = next((b for b in rows if b["data"] == row["data"]
                     and b["encoder"] == "id only"), None)
        if base is None or row is base:
            continue
        warm = row["warm hr@10"] / base["warm hr@10"]
        speed = row["train ex/s"] / base["train ex/s"]
        checks = [row["cold hr@100"] > base["cold hr@100"], warm >= 0.98]
        if row["encoder"] == "MiniLM frozen":
            checks.append(speed >= 0.5)
        comparison.append({
            "data": row["data"], "encoder": row["encoder"],
            "warm hr@10 ratio": f"{warm:.3f}",
            "cold hr@100 (id only)": f"{row['cold hr@100']:.4f} "
                                     f"({base['cold hr@100']:.4f})",
            "train ex/s ratio": f"{speed:.2f}",
            "checks": "PASS" if all(checks) else "FAIL"})
    return comparison


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="ml-100k folder (omit: synthetic only)")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--preset", default="default",
                        help="config preset of every variant (tiny: a smoke run)")
    parser.add_argument("--only", action="append", choices=sorted(VARIANTS),
                        help="run only this variant (repeatable)")
    parser.add_argument("--set", action="append", default=[],
                        metavar="SECTION.KEY=VALUE",
                        help="extra override applied to every variant")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # One variant in a fresh process, so peak memory is its own.
        spec = json.loads(args.child)
        print("RESULT " + json.dumps(run_variant(spec["source"], spec["stages"],
                                                 spec["extra"], spec["preset"])))
        return 0

    sources = {"synthetic": ["data.source=synthetic"]}
    if args.data_dir:
        sources["ml-100k"] = ["data.source=movielens",
                              f"data.data_dir={args.data_dir}"]
    rows = []
    for data, source in sources.items():
        for encoder, stages in VARIANTS.items():
            if args.only and encoder not in args.only:
                continue
            spec = json.dumps({"source": source, "stages": stages, "extra": args.set,
                               "preset": args.preset})
            process = subprocess.run([sys.executable, __file__, "--child", spec],
                                     capture_output=True, text=True)
            lines = [line for line in process.stdout.splitlines()
                     if line.startswith("RESULT ")]
            if process.returncode or not lines:
                print(process.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"variant {data}/{encoder} failed")
            rows.append({"data": data, "encoder": encoder,
                         **json.loads(lines[-1][len("RESULT "):])})
            print(f"  {data} / {encoder}: done", flush=True)

    from mtl_tf.evaluation import format_table

    print(format_table(rows, COLUMNS))
    comparison = compare_to_id_only(rows)
    if comparison:
        print("\nAgainst the id-only model of the same data (this run):")
        print(format_table(comparison, list(comparison[0])))
    out = Path(args.out)
    write_csv(rows, COLUMNS, out / "text_encoders.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
