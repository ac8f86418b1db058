"""The results table: rows of (section, figure, value, target, PASS/MISS), printed as text and
written as Markdown, with the machine and notes."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Row:
    section: str
    figure: str
    value: str
    target: str = ""
    result: str = ""  # PASS, MISS, or "" for figures without a target


def judge(value: float | None, at_least: float | None = None, at_most: float | None = None):
    if value is None:
        return "MISS"
    if at_least is not None and value < at_least:
        return "MISS"
    if at_most is not None and value > at_most:
        return "MISS"
    return "PASS"


def num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine(redis_version: str) -> list[tuple[str, str]]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    wrk = subprocess.run(["/usr/bin/wrk", "-v"], capture_output=True, text=True).stdout
    return [
        ("nproc", str(os.cpu_count())),
        ("CPU", cpu),
        ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("redis", redis_version),
        ("wrk", wrk.split(" [")[0].strip() or "?"),
        ("kernel", platform.release()),
        ("load average (1/5/15 min) at start", load_average()),
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
    ]


@dataclass
class Report:
    header: list[tuple[str, str]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args, **kwargs) -> None:
        self.rows.append(Row(*args, **kwargs))

    def ordered(self) -> list[Row]:
        """By section number; within a section, in the order measured."""
        return sorted(self.rows, key=lambda r: r.section.split(" ", 1)[0].rjust(4))  # 10 after 9

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  . {text}", flush=True)

    def text(self) -> str:
        cols = ("section", "figure", "value", "target", "result")
        table = [cols] + [tuple(getattr(r, c) for c in cols) for r in self.ordered()]
        widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
        lines = [f"{k}: {v}" for k, v in self.header] + [""]
        for i, r in enumerate(table):
            cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2])]
            cells += [r[3].ljust(widths[3]), r[4]]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines += ["", "Notes:"] + [f"- {n}" for n in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = ["# Benchmark", "", "| machine | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.header]
        lines += ["", "| section | figure | value | target | result |", "|---|---|--:|---|---|"]
        for r in self.ordered():
            cells = [r.section, r.figure, r.value, r.target, f"**{r.result}**" if r.result else ""]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"
