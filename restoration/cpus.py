"""How many CPUs this process may really use: the default thread count everywhere.

`os.cpu_count()` reports the machine's cores, also inside a container limited to fewer (a
Hugging Face Space, `docker run --cpus 2`, a Kubernetes CPU limit), and torch then runs more
threads than it gets CPU time for, which is slower than fewer threads. The truth is the smaller
of the CPUs the scheduler lets this process run on (`os.sched_getaffinity`; `taskset`, cpusets)
and the cgroup CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`),
rounded up.
"""

import math
import os
from pathlib import Path


def _affinity() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux; macOS has no affinity or cgroups
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _quota_v2(cgroup_root: Path, own: str) -> float | None:
    """The tightest `cpu.max` on the way from this process's cgroup up to the root."""
    limits, folder = [], cgroup_root / own.lstrip("/")
    while True:
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            if quota != "max":
                limits.append(int(quota) / int(period))
        except (OSError, ValueError):
            pass
        if folder == cgroup_root or cgroup_root not in folder.parents:
            break
        folder = folder.parent
    return min(limits) if limits else None


def _quota_v1(cgroup_root: Path, own: str) -> float | None:
    """The `cpu` controller's CFS quota: in this process's cgroup, else at the mount's root."""
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for folder in (cgroup_root / name / own.lstrip("/"), cgroup_root / name):
            try:
                quota = int((folder / "cpu.cfs_quota_us").read_text())
                period = int((folder / "cpu.cfs_period_us").read_text())
            except (OSError, ValueError):
                continue
            return quota / period if quota > 0 and period > 0 else None
    return None


def cgroup_cpu_quota(cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")):
    """CPUs' worth of time the cgroup quota allows (e.g. 1.5), or None when there is no quota."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    groups = {}  # controller → this process's cgroup path ("" for cgroup v2's unified line)
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        for c in controllers.split(","):
            groups[c] = path
    if "" in groups and (cgroup_root / "cgroup.controllers").exists():  # cgroup v2
        return _quota_v2(cgroup_root, groups[""])
    return _quota_v1(cgroup_root, groups.get("cpu", "/"))


def usable_cpus(affinity: int | None = None, quota: float | None = None, read_quota: bool = True) -> int:
    """min(CPUs this process may run on, the cgroup quota rounded up), at least 1."""
    cpus = affinity if affinity is not None else _affinity()
    if quota is None and read_quota:
        quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)
