"""``python -m mtl_tf.schema``: schema tools.

``infer`` drafts a schema and tasks from data files: the JSON document goes to
stdout (ready for a config file's "schema" and "tasks" sections), a commented
summary of how each column was guessed to stderr::

    python -m mtl_tf.schema infer logs/events.csv --items items.parquet > draft.json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtl_tf.schema.infer import Draft

_PROG = "python -m mtl_tf.schema"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Schema tools for mtl_tf data files.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     required=True)
    infer = commands.add_parser(
        "infer", help="draft a schema and tasks from a data file",
        description="Drafts a feature schema and suggested tasks from an\n"
                    "interactions file (and optional item / user side tables).\n"
                    "Prints JSON with 'schema' and 'tasks' to stdout and, on\n"
                    "stderr, how each column was guessed. It is a draft: read\n"
                    "and edit it.",
        epilog=f"example:\n  {_PROG} infer events.csv --items items.csv > draft.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    infer.add_argument("file", metavar="FILE",
                       help="the interactions: a CSV / TSV / Parquet / JSON Lines "
                            "file (optionally .gz), or a quoted glob of shards")
    infer.add_argument("--items", metavar="F", default="",
                       help="item side table, one row per item")
    infer.add_argument("--users", metavar="F", default="",
                       help="user side table, one row per user")
    infer.add_argument("--sample", metavar="N", type=int, default=100_000,
                       help="read the first N rows of each file (0: all; "
                            "default: %(default)s)")
    infer.add_argument("--separator", metavar="S", default="",
                       help="delimiter of CSV / TSV files (default: by extension)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit code (2 for a usage or file error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.sample < 0:
        parser.error(f"--sample must be >= 0. Received: {args.sample}.")
    from mtl_tf.data.files import MALFORMED_ATTR, read_table
    from mtl_tf.schema.infer import draft_schema

    try:
        tables = {what: read_table(path, separator=args.separator, what=what,
                                   lenient=True, max_rows=args.sample)
                  for what, path in (("interactions", args.file),
                                     ("items", args.items), ("users", args.users))
                  if path}
        draft = draft_schema(tables["interactions"], tables.get("items"),
                             tables.get("users"))
    except ValueError as error:
        print(f"{_PROG} infer: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(draft.to_dict(), indent=2))
    skipped = {what: t.attrs.get(MALFORMED_ATTR, 0) for what, t in tables.items()}
    print(_summary(draft, args, {w: len(t) for w, t in tables.items()}, skipped),
          file=sys.stderr)
    return 0


def _summary(draft: Draft, args: argparse.Namespace, rows: dict[str, int],
             skipped: dict[str, int]) -> str:
    """The commented stderr report: rows read, each column's guess, what to do."""
    read = ", ".join(f"{what} {rows[what]} rows" for what in rows)
    lines = [f"# Draft schema from {args.file}: {read}."]
    if args.sample and any(n >= args.sample for n in rows.values()):
        lines.append(f"# Only the first {args.sample} rows of a file were read; "
                     "--sample 0 reads everything.")
    for what, count in skipped.items():
        if count:
            lines.append(f"# Skipped {count} malformed lines of the {what} file; "
                         "training fails on them unless data.lenient is true.")
    lines.append("# How each column was guessed (edit the JSON where a guess is "
                 "wrong):")
    width = max(map(len, draft.notes), default=0)
    lines += [f"#   {column:<{width}}  {note}" for column, note in draft.notes.items()]
    tasks = ", ".join(t["name"] + (f" ({t['type']}, where {t['where']})" if
                                   t.get("where") else f" ({t['type']})")
                      for t in draft.tasks)
    lines.append(f"# Tasks: {tasks or 'none (no label column found)'}.")
    if draft.schema.user_id is None:
        lines.append("# No user id found: name the user key user_id, or declare "
                     "it by hand (side 'user', kind 'id').")
    if draft.schema.item_id is None:
        lines.append("# No item id found: retrieval and item features need one; "
                     "name the item key item_id, or declare it by hand.")
    data = {"source": "files", "path": args.file}
    data.update({k: v for k, v in (("items_path", args.items),
                                   ("users_path", args.users)) if v})
    lines += [
        "# Next: check each side and kind; keep label columns out of \"schema\"; set",
        "# weights and which tasks you want; then put \"schema\" and \"tasks\" in a",
        f"# config file next to a \"data\" section: {json.dumps(data)}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
