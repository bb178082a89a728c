"""Row conditions of tasks (`where`): which rows a task trains and is scored on.

A condition is one comparison or several joined by ``and``, each
``<column> <op> <number>`` with op one of ``== != > >= < <=``, e.g.
``"click == 1"`` or ``"click == 1 and price > 0"``. The empty condition holds on
every row.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

_OPS = {"==": np.equal, "!=": np.not_equal, ">=": np.greater_equal,
        "<=": np.less_equal, ">": np.greater, "<": np.less}
_COMPARISON = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(==|!=|>=|<=|>|<)\s*"
                         r"([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")


@dataclasses.dataclass(frozen=True)
class Condition:
    """A parsed `where`: a conjunction of (column, op, value) comparisons."""

    text: str
    terms: tuple[tuple[str, str, float], ...]

    @property
    def columns(self) -> list[str]:
        return [column for column, _, _ in self.terms]

    def rows(self, frame) -> np.ndarray:
        """`evaluate` on the columns of a pandas DataFrame."""
        return self.evaluate({c: frame[c].to_numpy() for c in self.columns},
                             len(frame))

    def evaluate(self, columns: dict[str, np.ndarray], size: int) -> np.ndarray:
        """Boolean mask of the rows where the condition holds (NaN fails it)."""
        mask = np.ones(size, bool)
        for column, op, value in self.terms:
            with np.errstate(invalid="ignore"):
                mask &= _OPS[op](np.asarray(columns[column], np.float64), value)
        return mask


def parse_condition(text: str, where: str = "where") -> Condition:
    """Parses a `where` text.

    Raises:
        ValueError: naming `where` and showing the accepted form.
    """
    text = (text or "").strip()
    if not text:
        return Condition("", ())
    terms = []
    for part in re.split(r"\s+and\s+", text):
        match = _COMPARISON.match(part)
        if match is None:
            raise ValueError(
                f"{where}={text!r}: cannot parse {part.strip()!r}; write "
                "'<column> <op> <number>' with op one of == != > >= < <=, joined "
                "by 'and' (e.g. 'click == 1 and price > 0').")
        terms.append((match.group(1), match.group(2), float(match.group(3))))
    return Condition(text, tuple(terms))
