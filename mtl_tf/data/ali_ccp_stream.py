"""Streams Ali-CCP's raw files into int32 codes, one pass per file.

`SkeletonPart` reads one `sample_skeleton_*.csv` line by line, then only the
lines of its `common_features_*.csv` that the kept impressions need, and holds
each field as interned int32 codes (~4 bytes per row and field plus the
vocabularies). The format (`mtl_tf.data.ali_ccp`): comma fields, a feature
list of `field "\x02" id "\x03" value` joined by "\x01".
"""

from __future__ import annotations

import gzip
from array import array
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from mtl_tf.data.cleaning import LENIENT_HINT

SKELETON = ("sample_id", "click", "conversion", "common_feature_index",
            "feature_num", "feature_list")
COMMON = ("common_feature_index", "feature_num", "feature_list")


class _Bad(Exception):
    """A malformed line: the column at fault, its message and the counter."""

    def __init__(self, column: str, message: str, counter: str = "malformed"):
        super().__init__(message)
        self.column, self.message, self.counter = column, message, counter


class _Codes:
    """Interned int32 codes of a stream of rows, per field (-1: absent); a
    field gets a column once some row holds it, so absent fields cost nothing."""

    def __init__(self, vocabularies: dict[str, dict[str, int]]):
        self.vocabularies, self.columns, self.rows = vocabularies, {}, 0

    def _code(self, field: str, value: str) -> int:
        codes = self.vocabularies[field]
        code = codes.get(value)
        if code is None:
            code = codes[value] = len(codes)
        return code

    def add(self, cells: Mapping[str, str]) -> None:
        for field, column in self.columns.items():
            value = cells.get(field)
            column.append(-1 if value is None else self._code(field, value))
        for field in cells:
            if field not in self.columns:
                self.columns[field] = array("i", [-1]) * self.rows
                self.columns[field].append(self._code(field, cells[field]))
        self.rows += 1

    def arrays(self) -> dict[str, np.ndarray]:
        return {f: np.frombuffer(c, np.int32) for f, c in self.columns.items()}


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of the non-blank lines, streamed."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="latin-1") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if line and not line.isspace():
                yield number, line


def _cells(text: str, count: str, separators: Mapping[str, str | None],
           max_values: int) -> dict[str, str]:
    """Parses a feature list into {field: first id, or the first `max_values`
    ids joined by the field's separator} for the wanted fields."""
    items = text.split("\x01") if text else []
    if not count.isdigit() or int(count) != len(items):
        raise _Bad("feature_num", f"says {count!r} features, the feature list "
                   f"holds {len(items)}")
    ids: dict[str, list[str]] = {}
    for position, item in enumerate(items, 1):
        field, _, rest = item.partition("\x02")
        value_id, sep, value = rest.partition("\x03")
        if value != "1.0":  # Most values; float() is the hot loop's cost.
            try:
                float(value)
            except ValueError:
                sep = ""
        if not (field and value_id and sep):
            raise _Bad("feature_list", f"feature {position} {item!r} is not "
                       "field_id\\x02feature_id\\x03value (value a number)")
        if field in separators:
            ids.setdefault(field, []).append(value_id)
    return {f: v[0] if separators[f] is None else separators[f].join(v[:max_values])
            for f, v in ids.items()}


class SkeletonPart:
    """One skeleton file joined with its common-features file, as codes."""

    def __init__(self, skeleton: Path, common: Path, separators: Mapping,
                 vocabularies: dict, counts: dict, *, lenient: bool,
                 max_rows: int, fraction: float, seed: int, max_values: int):
        self.skeleton_path = skeleton
        self.lenient, self.counts = lenient, counts
        rows, slot_of = _Codes(vocabularies), {}
        slots, clicks, conversions, lines = (array("i"), array("b"), array("b"),
                                             array("q"))
        rng, draws = np.random.default_rng(seed), []
        read = 0
        for number, line in _lines(skeleton):
            read += 1
            if max_rows and read > max_rows:
                break
            if fraction < 1.0:  # Uniforms drawn in blocks: one per line read.
                draws = draws or (rng.random(65536) >= fraction).tolist()
                if draws.pop():
                    continue
            counts["rows"] += 1
            parts = line.split(",")
            try:
                if len(parts) != len(SKELETON):
                    raise _Bad("", f"expected {len(SKELETON)} comma-separated "
                               f"fields {list(SKELETON)}, found {len(parts)}")
                click, conversion = parts[1], parts[2]
                for column, value in (("click", click), ("conversion", conversion)):
                    if value not in ("0", "1"):
                        raise _Bad(column, f"cannot parse {value!r}; expected 0 "
                                   "or 1", "bad_labels")
                if conversion == "1" and click == "0":
                    raise _Bad("conversion", "conversion=1 on an impression "
                               "with click=0; Ali-CCP records conversions after "
                               "clicks only", "bad_labels")
                cells = _cells(parts[5], parts[4], separators, max_values)
            except _Bad as bad:
                self._reject(bad, skeleton, number, SKELETON)
                continue
            slots.append(slot_of.setdefault(parts[3], len(slot_of)))
            rows.add(cells)
            clicks.append(click == "1")
            conversions.append(conversion == "1")
            lines.append(number)
        counts["lines"] += min(read, max_rows) if max_rows else read
        found = self._read_common(common, slot_of, separators, vocabularies,
                                  max_values)
        self.slots = np.frombuffer(slots, np.int32)
        keep = found[self.slots]
        if not keep.all():
            at = int(np.argmax(~keep))
            index = list(slot_of)[self.slots[at]]
            if not lenient:
                raise ValueError(
                    f"{skeleton}, line {lines[at]}: 'common_feature_index' "
                    f"{index!r} is not in {common.name}, so the impression has "
                    "no user features. Use the common-features file of the same "
                    f"release, or {LENIENT_HINT}.")
            counts["missing_common"] += int((~keep).sum())
        self.slots = self.slots[keep]
        self.skeleton = {f: c[keep] for f, c in rows.arrays().items()}
        self.click = np.frombuffer(clicks, np.int8)[keep].astype(np.float32)
        self.purchase = np.frombuffer(conversions, np.int8)[keep].astype(np.float32)
        self.line = np.frombuffer(lines, np.int64)[keep]

    def _reject(self, bad: _Bad, path: Path, number: int, columns: tuple) -> None:
        if not self.lenient:
            where = (f"field {bad.column!r} (comma field "
                     f"{columns.index(bad.column) + 1} of {len(columns)}): "
                     if bad.column else "")
            raise ValueError(f"{path}, line {number}: {where}{bad.message}. Fix or "
                             f"remove the line, or {LENIENT_HINT}.")
        self.counts[bad.counter] += 1

    def _read_common(self, path: Path, slot_of: Mapping[str, int],
                     separators: Mapping, vocabularies: dict, max_values: int
                     ) -> np.ndarray:
        """Streams the common features, parsing only the needed indexes (and
        stopping once all are found); returns which slots were found."""
        found, remaining = bytearray(len(slot_of)), len(slot_of)
        codes, slots = _Codes(vocabularies), array("i")
        for number, line in _lines(path):
            if not remaining:
                break
            comma = line.find(",")  # The index, without copying a long line.
            slot = slot_of.get(line[:comma] if comma >= 0 else line)
            if slot is None:
                continue
            if found[slot]:
                self._reject(_Bad("common_feature_index", "the index appears "
                                  "twice in the file; keep one line per index",
                                  "duplicates"), path, number, COMMON)
                continue
            parts = line.split(",")
            try:
                if len(parts) != len(COMMON):
                    raise _Bad("", f"expected {len(COMMON)} comma-separated "
                               f"fields {list(COMMON)}, found {len(parts)}")
                cells = _cells(parts[2], parts[1], separators, max_values)
            except _Bad as bad:
                self._reject(bad, path, number, COMMON)
                continue
            found[slot], remaining = 1, remaining - 1
            codes.add(cells)
            slots.append(slot)
        order = np.frombuffer(slots, np.int32)
        self.common = {}
        for field, column in codes.arrays().items():
            self.common[field] = np.full(len(slot_of), -1, np.int32)
            self.common[field][order] = column
        return np.frombuffer(bytes(found), np.uint8).astype(bool)

    def field(self, field: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The codes of `field` on the kept rows (or rows `rows` of them)."""
        slots = self.slots if rows is None else self.slots[rows]
        own = self.skeleton.get(field)
        own = own if own is None or rows is None else own[rows]
        shared = self.common.get(field)
        if shared is None:
            return own if own is not None else np.full(len(slots), -1, np.int32)
        return shared[slots] if own is None else np.where(own >= 0, own,
                                                          shared[slots])


__all__ = ["COMMON", "SKELETON", "SkeletonPart"]
