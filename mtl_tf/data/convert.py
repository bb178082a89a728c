"""`python -m mtl_tf.data.convert LOG OUT_DIR`: a log to sharded TFRecords.

Reads LOG (a file or a glob of shards, in any format the `files` source reads:
CSV, TSV, JSON Lines, Parquet, TFRecord, optionally gzipped) and writes its
rows in order to `OUT_DIR/part-00000-of-0000N.tfrecord.gz`, one
`tf.train.Example` per row (`mtl_tf.data.tfrecords`). Point `data.path` at
`OUT_DIR/part-*.tfrecord.gz` to train on them.

Example:
    python -m mtl_tf.data.convert shop_data/interactions.csv shop_data/tfrecords \\
        --shards 4
"""

from __future__ import annotations

import argparse
import sys

from mtl_tf.data.files import read_table
from mtl_tf.data.tfrecords import write_tfrecords


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl_tf.data.convert",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="a table file or a glob of shards")
    parser.add_argument("out_dir", help="folder for the TFRecord shards")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--separator", default="",
                        help="CSV / TSV delimiter (default: by the extension)")
    parser.add_argument("--no-gzip", action="store_true",
                        help="write uncompressed .tfrecord files")
    parser.add_argument("--lenient", action="store_true",
                        help="skip and count malformed lines instead of stopping")
    args = parser.parse_args(argv)
    try:
        frame = read_table(args.log, separator=args.separator, lenient=args.lenient)
        paths = write_tfrecords(frame, args.out_dir,
                                shards=min(args.shards, max(len(frame), 1)),
                                gzip=not args.no_gzip)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    skipped = frame.attrs.get("malformed_rows", 0)
    print(f"wrote {len(frame)} rows to {len(paths)} shards in {args.out_dir}"
          + (f" ({skipped} malformed lines skipped)" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
