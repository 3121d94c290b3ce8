"""Where a check's time goes, in process: `dashboard.track.check_track` on given files after the
server's warm-up, with each check's stage timings (`TrackReport.timings`: wall seconds of the
decode, the analysis, the blend in its own thread, the waits, the neighbours) and its process
CPU seconds (all threads). No browser, no upload, no figures (bench/browser.py times those).

    TRACKLENS_SHARED_DATA=../shared/data .venv/bin/python bench/check_stages.py --repeat 2 FILE...

Prints one JSON line per check. Compare commits by running it with PYTHONPATH pointing at each
checkout, alternating, on the same machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from tracklens.dashboard import track

    start = time.perf_counter()
    track.warm_up()
    print(json.dumps({"warm_up_s": round(time.perf_counter() - start, 2), "module": track.__file__}), flush=True)
    for rep in range(args.repeat):
        for path in args.files:
            wall, cpu = time.perf_counter(), time.process_time()
            report = track.check_track(path, path.name, digest=f"{path}:{rep}:{time.time()}")  # never cached
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stages = {k: round(v, 3) for k, v in getattr(report, "timings", {}).items()}
            print(json.dumps({"file": path.name, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), **stages}), flush=True)


if __name__ == "__main__":
    main()
