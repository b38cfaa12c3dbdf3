"""What a case reports: figures, each beside its target, and the table of them all."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .settings import MiB


@dataclass(frozen=True)
class Figure:
    """One measured figure: its value, the target beside it, and whether it meets it.

    ``ok`` is None for a figure that is only reported (throughput, CPU).
    """

    name: str
    value: float | int | str | None
    unit: str = ""
    target: str = ""
    ok: bool | None = None

    def shown(self) -> str:
        """``rss +3.1 MiB (< 32 MiB)``; a figure that missed its target is marked ``!``."""
        text = f"{self.name} {format_value(self.value, self.unit)}"
        if self.target:
            text += f" ({self.target})"
        if self.ok is False:
            text = "!" + text
        return text


def format_value(value: float | int | str | None, unit: str) -> str:
    """A value for people: bytes in MiB, seconds in ms or s."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if unit == "bytes":
        return f"{value / MiB:.1f} MiB"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.1f} s"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "MB/s":
        return f"{value:.0f} MB/s"
    if isinstance(value, float):
        return f"{value:.2f}{' ' + unit if unit else ''}"
    return f"{value}{' ' + unit if unit else ''}"


def at_most(name: str, value: float | None, limit: float, unit: str = "") -> Figure:
    """A figure that must be at most ``limit`` (None: not measured, a failure)."""
    return Figure(name, value, unit, f"<= {format_value(limit, unit)}", value is not None and value <= limit)


def at_least(name: str, value: float | None, floor: float, unit: str = "") -> Figure:
    """A figure that must be at least ``floor``."""
    return Figure(name, value, unit, f">= {format_value(floor, unit)}", value is not None and value >= floor)


def equals(name: str, value: object, expected: object, unit: str = "") -> Figure:
    """A figure that must equal ``expected``."""
    shown: float | int | str | None = (
        value if isinstance(value, int | float | str) or value is None else str(value)
    )
    return Figure(name, shown, unit, f"= {expected}", value == expected)


def holds(name: str, ok: bool, detail: str = "") -> Figure:
    """A yes/no figure: ``listener kept (yes)``."""
    return Figure(name, detail or ("yes" if ok else "no"), "", "", ok)


def report(name: str, value: float | int | str | None, unit: str = "") -> Figure:
    """A figure that is only reported."""
    return Figure(name, value, unit)


@dataclass
class CaseResult:
    """One case on one driver."""

    case: str
    driver: str
    figures: list[Figure] = field(default_factory=list)
    #: Why it failed when a figure cannot say it (the server did not start...), and details.
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """No error, and every figure that has a target met it."""
        return self.error is None and all(figure.ok is not False for figure in self.figures)

    def to_json(self) -> dict[str, object]:
        """The result as plain data (``--json``)."""
        data = asdict(self)
        data["passed"] = self.passed
        return data


def table(results: Sequence[CaseResult]) -> str:
    """The results as a table: case, driver, PASS/FAIL, and the figures that decide it."""
    rows = [("CASE", "DRIVER", "RESULT", "FIGURES (target)")]
    for result in results:
        figures = "; ".join(figure.shown() for figure in result.figures)
        if result.error is not None:
            figures = f"error: {result.error}" + (f"; {figures}" if figures else "")
        rows.append((result.case, result.driver, "PASS" if result.passed else "FAIL", figures))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(
        f"{case:<{widths[0]}}  {driver:<{widths[1]}}  {verdict:<{widths[2]}}  {figures}".rstrip()
        for case, driver, verdict, figures in rows
    )


def markdown(results: Sequence[CaseResult]) -> str:
    """The results as a Markdown table (for docs/reliability.md)."""
    lines = ["| case | driver | result | figures (target) |", "| --- | --- | --- | --- |"]
    for result in results:
        figures = "; ".join(figure.shown() for figure in result.figures)
        if result.error is not None:
            figures = f"error: {result.error}" + (f"; {figures}" if figures else "")
        verdict = "PASS" if result.passed else "FAIL"
        lines.append(f"| {result.case} | {result.driver} | {verdict} | {figures.replace('|', '/')} |")
    return "\n".join(lines)


def write_json(path: Path, results: Sequence[CaseResult], meta: dict[str, object]) -> None:
    """Write every result, with the run's settings, to ``path``."""
    path.write_text(json.dumps({"run": meta, "results": [r.to_json() for r in results]}, indent=2) + "\n")
