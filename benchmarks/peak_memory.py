"""The peak resident memory of this process alone.

`resource.getrusage(RUSAGE_SELF).ru_maxrss` is not it for a process that a
big parent started: Linux carries the parent's high-water mark into the child
across fork and exec (a pytest worker that peaked at 12 GB made every
benchmark subprocess it spawned report 12 GB). `VmHWM` in /proc/self/status is
the high-water mark of this process's own address space, which exec replaces.
"""

from __future__ import annotations

import resource


def peak_rss_gb() -> float:
    """This process's peak resident memory in GB (10^9 bytes): `VmHWM` where
    /proc exists, else `ru_maxrss` (KiB on Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
