"""Load check of "check your track": concurrent uploads to the served dashboard over loopback.

Starts `tracklens dashboard` (waitress) on a free port, then posts the upload callback exactly as
the browser does (`/_dash-update-component`) with real GTZAN audio from ../shared/data:

- a 30 s clip (the Opus files as they are, a different clip per request so no cache answers);
- a 4-minute file (eight clips joined, encoded as MP3 at 44.1 kHz, a different order per request).

For each size it measures one client at a time, then ``--clients`` at once, and the same analysis
called in-process without HTTP (the plain baseline); it prints p50/p95/max latency, the ratio to
the baseline and the number of failed requests. Bounded: ``--sequential``, ``--requests`` (30 s)
and ``--long-requests`` (4 min) uploads and a ``--time-limit`` for the whole run (requests not
started by then are skipped and counted as failed).

    .venv/bin/python bench/dashboard.py                  # 4 clients: 12 x 30 s, 4 x 4 min
    .venv/bin/python bench/dashboard.py --clients 2 --requests 6 --long-requests 2
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tracklens import config  # noqa: E402

GENRES = config.GTZAN_GENRES
LONG_SECONDS = 240.0


def upload_callback(url: str) -> dict:
    """The dependency entry of the upload callback (its output spec), from the running app."""
    with urllib.request.urlopen(url + "/_dash-dependencies", timeout=30) as response:
        deps = json.load(response)
    for dep in deps:
        if any(i["id"] == "check-upload" and i["property"] == "contents" for i in dep["inputs"]) \
                and "check-results" in dep["output"]:
            return dep
    raise SystemExit("bench/dashboard.py: the app has no check-your-track upload callback")


def payload(dep: dict, name: str, raw: bytes, mime: str) -> bytes:
    outputs = [dict(zip(("id", "property"), part.rsplit(".", 1)))
               for part in dep["output"].strip(".").split("...")]
    body = {"output": dep["output"], "outputs": outputs,
            "inputs": [{"id": "check-upload", "property": "contents",
                        "value": f"data:{mime};base64,{base64.b64encode(raw).decode()}"}],
            "changedPropIds": ["check-upload.contents"],
            "state": [{"id": "check-upload", "property": "filename", "value": name}]}
    return json.dumps(body).encode()


def post(url: str, body: bytes, timeout: float) -> tuple[float, str | None]:
    """(latency in s, None) on success, or (latency, reason) when the request failed."""
    start = time.perf_counter()
    request = urllib.request.Request(url + "/_dash-update-component", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
    except Exception as exc:  # a failed request is counted, not fatal
        return time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:160]
    elapsed = time.perf_counter() - start
    text = json.dumps(answer.get("response", {}))
    if "check-error" in text or "check-ok" not in text:
        return elapsed, "the page answered with an error: " + text[:160]
    return elapsed, None


def real_clips(shared: Path) -> list[Path]:
    """Full 30 s GTZAN clips, interleaved across genres."""
    per_genre = [sorted((shared / "gtzan" / "audio" / g).glob("*.opus")) for g in GENRES]
    out = []
    for i in range(max(len(p) for p in per_genre)):
        out += [p[i] for p in per_genre if i < len(p)]
    return out


def long_files(clips: list[Path], n: int) -> list[bytes]:
    """``n`` files of about 4 minutes of real music: eight clips each, in a seeded order, encoded
    as MP3 at 44.1 kHz stereo (each clip is decoded once)."""
    import soundfile as sf

    from tracklens import audio

    pool = [audio.load_audio(c, sr=44_100).y for c in clips[:12]]
    out = []
    for seed in range(n):
        order = np.random.default_rng(seed).choice(len(pool), size=8, replace=False)
        y = np.concatenate([pool[i] for i in order])[: int(LONG_SECONDS * 44_100)]
        buffer = io.BytesIO()
        sf.write(buffer, np.stack([y, y], axis=1), 44_100, format="MP3")
        out.append(buffer.getvalue())
    return out


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return float("nan"), float("nan"), float("nan")
    return float(np.percentile(values, 50)), float(np.percentile(values, 95)), float(max(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4, help="concurrent uploads (default 4)")
    parser.add_argument("--requests", type=int, default=12, help="30 s uploads in the concurrent phase (default 12)")
    parser.add_argument("--long-requests", type=int, default=4,
                        help="4-minute uploads in the concurrent phase (default 4)")
    parser.add_argument("--sequential", type=int, default=2, help="uploads per size, one at a time (default 2)")
    parser.add_argument("--time-limit", type=float, default=540.0, help="seconds for the whole run (default 540)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request before it counts as failed")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < 1 or args.long_requests < 1 or args.sequential < 0:
        parser.error("--clients, --requests and --long-requests must be >= 1, --sequential >= 0")
    shared = config.SHARED_DATA_DIR
    if not (shared / "gtzan" / "audio").is_dir():
        raise SystemExit(f"bench/dashboard.py: needs the real GTZAN clips in {shared / 'gtzan' / 'audio'}")
    deadline = time.monotonic() + args.time_limit

    clips = real_clips(shared)
    n_short = args.sequential + args.requests + 1
    n_long = args.sequential + args.long_requests + 1
    if n_short > len(clips):
        parser.error(f"only {len(clips)} distinct 30 s clips: lower --requests/--sequential")
    print(f"preparing {n_short} x 30 s clips and {n_long} x {LONG_SECONDS / 60:g}-minute MP3 files ...", flush=True)
    short = [(c.name, c.read_bytes(), "audio/ogg") for c in clips[:n_short]]
    longs = [(f"long{i}.mp3", raw, "audio/mpeg") for i, raw in enumerate(long_files(clips, n_long))]

    from tracklens.dashboard.app import serve_in_subprocess

    start = time.monotonic()
    with serve_in_subprocess(timeout=300) as url:
        dep = upload_callback(url)
        print(f"dashboard ready in {time.monotonic() - start:.1f} s (start-up loads the model and warms up)",
              flush=True)
        rows = []
        for label, files, n_conc in (("30 s clip", short, args.requests), ("4 min MP3", longs, args.long_requests)):
            bodies = [payload(dep, n, raw, mime) for n, raw, mime in files]
            mb = np.mean([len(raw) for _, raw, _ in files]) / 2**20
            # The plain baseline: the same analysis in this process, no HTTP, one at a time.
            base = direct_seconds(files[-1])
            seq, fails, skipped = [], 0, 0
            for body in bodies[: args.sequential]:
                if time.monotonic() > deadline:
                    skipped += 1
                    continue
                elapsed, error = post(url, body, args.timeout)
                seq.append(elapsed)
                fails += error is not None
                if error:
                    print(f"  failed: {error}")
            conc, cfails, cskipped, wall = concurrent(url, bodies[args.sequential: args.sequential + n_conc],
                                                      clients=args.clients, timeout=args.timeout, deadline=deadline)
            rows.append((label, mb, base, seq, fails + skipped, conc, cfails + cskipped, wall))
    print_table(rows, clients=args.clients)


def direct_seconds(file) -> float:
    """Seconds for the dashboard's analysis of one upload in this process (uncached), after a warm-up."""
    from tracklens.dashboard import data, track

    if not getattr(direct_seconds, "warm", False):  # configure() clears the caches: once only
        data.configure(None)
        data.warm_up()
        direct_seconds.warm = True
    name, raw, _ = file
    start = time.perf_counter()
    track._check_track(raw, name)
    return time.perf_counter() - start


def concurrent(url: str, bodies: list[bytes], *, clients: int, timeout: float, deadline: float):
    latencies, failures, skipped = [], 0, 0

    def one(body):
        if time.monotonic() > deadline:
            return None
        return post(url, body, timeout)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for result in pool.map(one, bodies):
            if result is None:
                skipped += 1
                continue
            elapsed, error = result
            latencies.append(elapsed)
            if error:
                failures += 1
                print(f"  failed: {error}")
    return latencies, failures, skipped, time.perf_counter() - start


def print_table(rows, *, clients: int) -> None:
    print()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"check your track over loopback (waitress, {os.cpu_count()} cores, load average {load}); "
          "latency in seconds")
    header = (f"| file | MB | in-process | 1 client p50 | {clients} clients n | p50 | p95 | max | "
              f"p50 / in-process | failed |")
    print(header)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, mb, base, seq, seq_fail, conc, conc_fail, wall in rows:
        s50 = percentiles(seq)[0]
        p50, p95, worst = percentiles(conc)
        print(f"| {label} | {mb:.1f} | {base:.2f} | {s50:.2f} | {len(conc)} | {p50:.2f} | {p95:.2f} | {worst:.2f} | "
              f"{p50 / base:.1f}x | {seq_fail + conc_fail} |")
    print()
    print("in-process: the same analysis called directly (no HTTP, no concurrency), the plain baseline;")
    print(f"p50/p95/max: {clients} uploads at once; failed: errors, timeouts and requests skipped at the time limit.")


if __name__ == "__main__":
    main()
