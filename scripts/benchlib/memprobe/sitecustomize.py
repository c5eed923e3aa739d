"""`scripts/bench.py --memory-probe`: the worker's memory, sampled once a second (benchmark only).

Python imports a `sitecustomize` module found on its path at start; the bench puts this folder first
on the worker's PYTHONPATH and names the output file in BENCH_MEMPROBE_OUT (not KPI_*: the settings
reject unknown KPI_ names). Nothing is loaded into any other process or when the variable is unset.

Each line: seconds since start, VmRSS/VmHWM/RssAnon (kB, /proc), Python's allocated blocks (one per
live object or buffer: the state), glibc's heap in use and free (mallinfo2, kB) and its mmapped
chunks. RSS that stays after the blocks went down is memory CPython keeps for reuse (pymalloc
arenas with some live object left), not a leak: issue 19's peak was decided by the state alive at
the end of the catch-up (docs/performance.md, "the worker's peak RSS after the split")."""
import os

if os.environ.get("BENCH_MEMPROBE_OUT"):
    import ctypes
    import json
    import sys
    import threading
    import time

    class _MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                  "fsmblks", "uordblks", "fordblks", "keepcost")]

    def _mallinfo():
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallinfo2.restype = _MallInfo2
            return libc.mallinfo2
        except (OSError, AttributeError):  # not glibc >= 2.33: RSS and blocks only
            return None

    def _status() -> dict:
        found = {}
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:")):
                    name, value = line.split(":")
                    found[name.lower() + "_kb"] = int(value.split()[0])
        return found

    def _sample(t0: float, mallinfo) -> dict:
        row = {"t": round(time.monotonic() - t0, 1), **_status(), "py_blocks": sys.getallocatedblocks()}
        if mallinfo is not None:
            m = mallinfo()
            row.update(malloc_inuse_kb=m.uordblks // 1024, malloc_free_kb=m.fordblks // 1024,
                       malloc_mmap_kb=m.hblkhd // 1024)
        return row

    def _run(path: str, every: float) -> None:
        mallinfo, t0 = _mallinfo(), time.monotonic()
        with open(path, "a", buffering=1) as out:
            while True:
                out.write(json.dumps(_sample(t0, mallinfo)) + "\n")
                time.sleep(every)

    threading.Thread(target=_run, args=(os.environ["BENCH_MEMPROBE_OUT"],
                                        float(os.environ.get("BENCH_MEMPROBE_EVERY", "1"))),
                     name="bench-memprobe", daemon=True).start()
