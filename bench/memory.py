"""Resident memory of a process, read from /proc (Linux): now (VmRSS), its peak (VmHWM), and a
reset of that peak, so that a peak can be measured over one request instead of a process's life.

Not `resource.getrusage(...).ru_maxrss`: a child started by `subprocess` inherits its parent's
peak in that figure (the exec is counted against it), so it reports the parent's memory.
"""

from pathlib import Path


def memory(pid: int | str = "self") -> dict[str, float]:
    """{"VmRSS": resident MB now, "VmHWM": peak resident MB since start or the last reset}."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def reset_peak(pid: int | str = "self"):
    """Start the peak (VmHWM) afresh from the current resident memory (the process must be ours)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
