"""What one stage run cost: a log line per run (wall time, device, peak host and GPU memory) and the table of a
run's lines (`python -m a2i.resources LOG...`; scripts/gpu_check.sh prints it after the GPU smoke run).

The line is written by `a2i.stage.run_stage` when a stage ends, so `dvc exp run`'s own output is the record:
no wrapper around the stage commands, and the figures are the stage process' own (peak RSS from getrusage,
peak GPU memory from torch's allocator).
"""

from __future__ import annotations

import os
import re
import resource
import sys
from pathlib import Path

TAG = "resources:"
_FIELD = re.compile(r"(\w+)=(\S+)")
COLUMNS = ("stage", "wall_s", "startup_s", "cpu_s", "device", "peak_rss_gib", "peak_gpu_gib")


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f}"


def process_seconds() -> float | None:
    """Seconds since this process started, interpreter start-up and imports included (Linux /proc; else None)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def usage_line(stage: str, run_s: float) -> str:
    """`resources: stage=<stage> wall_s=... startup_s=... cpu_s=... device=... peak_rss_gib=... peak_gpu_gib=...`
    for this process, whose stage action took `run_s`.

    wall_s is the process' age, or `run_s` where that is unknown; startup_s the part before the action (the
    interpreter and the stage's module-level imports); cpu_s its user + system CPU time, which other jobs on a
    shared CPU inflate far less. The device is
    the GPU when this process used CUDA (torch initialised it), else the CPU; torch is only looked up, never
    imported, so a stage without torch pays nothing.
    """
    age = process_seconds()
    wall_s = age or run_s
    startup = f"{age - run_s:.1f}" if age else "-"
    torch = sys.modules.get("torch")
    on_gpu = torch is not None and torch.cuda.is_initialized()
    device = f"cuda:{torch.cuda.current_device()}" if on_gpu else "cpu"
    gpu = _gib(torch.cuda.max_memory_allocated()) if on_gpu else "-"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = _gib(usage.ru_maxrss * 1024)  # Linux: KiB
    cpu_s = usage.ru_utime + usage.ru_stime
    return (f"{TAG} stage={stage} wall_s={wall_s:.1f} startup_s={startup} cpu_s={cpu_s:.1f} device={device} "
            f"peak_rss_gib={rss} peak_gpu_gib={gpu}")


def parse(lines) -> list[dict[str, str]]:
    """The fields of every resources line among `lines` (other log lines are skipped)."""
    return [dict(_FIELD.findall(line.split(TAG, 1)[1])) for line in lines if TAG in line]


def _number(field: str | None) -> float:
    """A numeric field, 0 where the line has none or `-` (a run without /proc has no start-up figure)."""
    try:
        return float(field)
    except (TypeError, ValueError):
        return 0.0


def table(rows: list[dict[str, str]]) -> str:
    """A markdown table of `parse`d rows, in run order, with the total wall time."""
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(row.get(column, "?") for column in COLUMNS) + " |" for row in rows]
    wall, startup, cpu = (sum(_number(row.get(column)) for row in rows)
                          for column in ("wall_s", "startup_s", "cpu_s"))
    out.append(f"| **total** | {wall:.1f} | {startup:.1f} | {cpu:.1f} | | | |")
    return "\n".join(out)


if __name__ == "__main__":  # python -m a2i.resources dvc-output.log ...
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m a2i.resources LOG [LOG...]")
    try:
        rows = [row for name in sys.argv[1:] for row in parse(Path(name).read_text(errors="replace").splitlines())]
    except OSError as error:
        raise SystemExit(f"error: {error}") from None
    if not rows:
        raise SystemExit(f"error: no '{TAG}' lines in {' '.join(sys.argv[1:])}")
    print(table(rows))
