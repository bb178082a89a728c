"""Command line entry point: ``python -m mtl_tf.train``.

Trains the multi-task recommender on the chosen data, evaluates it on the test
split, writes `config.json` / `metrics.json` / TensorBoard logs / checkpoints to the
run directory and exports a SavedModel for TF Serving.

Examples:
    python -m mtl_tf.train                                  # default preset, synthetic
    python -m mtl_tf.train --preset tiny --output-dir /tmp/run
    python -m mtl_tf.train --data movielens --data-dir ../shared/data/ml-100k
    python -m mtl_tf.train --set train.epochs=5 --set tasks.like.weight=0
    python -m mtl_tf.train --config examples/shop_mmoe.json     # your own log
    python -m mtl_tf.train --preset kuairand --data-dir data/KuaiRand-Pure
"""

from __future__ import annotations

import argparse
import sys

import mtl_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mtl_tf.config import PRESETS, Config, apply_overrides, get_preset, load_config_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mtl_tf.train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS),
                        help="named configuration (default: %(default)s)")
    parser.add_argument("--config", help="JSON config file (e.g. a run's config.json); "
                        "applied over the preset")
    parser.add_argument("--set", action="append", default=[],
                        metavar="SECTION.KEY=VALUE",
                        help="override one value, e.g. train.epochs=5 (repeatable)")
    parser.add_argument("--data", choices=["synthetic", "movielens", "tfds", "files"],
                        help="data source (shortcut for --set data.source=...; "
                        "files: your own log, see --config examples/shop_mmoe.json)")
    parser.add_argument("--data-dir", help="MovieLens directory, a public data "
                        "set's folder (with its --preset) or TFDS data dir")
    parser.add_argument("--seed", type=int, help="seed of weights and shuffling")
    parser.add_argument("--output-dir", help="run directory for logs, checkpoints, "
                        "config.json and metrics.json (default: runs/<preset>)")
    parser.add_argument("--export-dir", help="SavedModel base directory "
                        "(default: export.export_dir, i.e. saved_models)")
    parser.add_argument("--no-export", action="store_true", help="skip the export")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> Config:
    """The preset, then --config, then the shortcut flags, then --set overrides."""
    config = get_preset(args.preset)
    if args.config:
        config = load_config_file(args.config, config)
    overrides = []
    if args.data:
        overrides.append(f"data.source={args.data}")
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
        if not args.data and config.data.source == "synthetic":
            overrides.append("data.source=movielens")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.export_dir:
        overrides.append(f"export.export_dir={args.export_dir}")
    return apply_overrides(config, overrides + list(args.set))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = resolve_config(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from mtl_tf.distribution import serve_if_cluster_task
    from mtl_tf.evaluation import format_table
    from mtl_tf.experiment import run

    try:
        if serve_if_cluster_task(config.train):  # a parameter-server cluster task
            return 0
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    output_dir = args.output_dir or f"runs/{args.preset}"
    try:
        result = run(config, output_dir, export=not args.no_export,
                     verbose=0 if args.quiet else 1)
    except (ValueError, RuntimeError) as error:  # bad data or config: a message
        print(f"error: {error}", file=sys.stderr)
        return 2
    metrics = result["metrics"]
    if not result["chief"]:
        print(f"Worker done: training finished in {output_dir}; the chief "
              "evaluates and exports.")
        return 0
    print(format_table([{"metric": k, "test": v} for k, v in metrics.items()],
                       ["metric", "test"]))
    print(f"Run directory: {output_dir} (config.json, metrics.json, tensorboard/)")
    if result["export"] is not None:
        print(f"SavedModel: {result['export']}")
    if result.get("item_encoder_export") is not None:
        print(f"Item encoder SavedModel (needs tensorflow-text ops): "
              f"{result['item_encoder_export']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


