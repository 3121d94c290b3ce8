"""Load check of "check your track": concurrent uploads to the served dashboard over loopback.

Starts `tracklens dashboard` (waitress) on a free port, then uploads exactly as the page does (the
raw file to the upload route ``/_upload``, then the check callback ``/_dash-update-component``
with the id it answered) with real GTZAN audio from ../shared/data:

- a 30 s clip (the Opus files as they are, a different clip per request so no cache answers);
- a 4-minute file (eight clips joined, encoded as MP3 at 44.1 kHz, a different order per request);
- a 10-minute 44.1 kHz 24-bit stereo WAV (159 MB; twenty clips joined), one at a time.

For each size it measures one client at a time, then ``--clients`` at once, and the same analysis
called in-process without HTTP (the plain baseline); it prints p50/p95/max latency, the ratio of
the p95 to the baseline and the number of failed requests. A last phase posts ``--bad-requests``
bad uploads (corrupt, a header announcing 1024 channels and 4 GB, text named .wav, NaN samples, a
1 Hz header that decodes to 10 minutes) mixed with good clips, ``--clients`` at once: each must
get its own answer (an error line for a bad file, a result for a good one).

The server's memory is read from /proc/<pid>/status: resident size (VmRSS) before and after each
phase (after a short settle) and its peak during the phase (VmHWM, reset per phase through
/proc/<pid>/clear_refs where allowed, and VmRSS sampled every 50 ms).

Bounded: ``--sequential``, ``--requests`` (30 s), ``--long-requests`` (4 min), ``--wav`` (10 min)
and ``--bad-requests`` uploads and a ``--time-limit`` for the whole run (requests not started by
then are skipped and counted as failed).

    .venv/bin/python bench/dashboard.py                  # 4 clients: 12 x 30 s, 4 x 4 min, 1 x 10 min
    .venv/bin/python bench/dashboard.py --clients 2 --requests 6 --long-requests 2 --wav 0
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tracklens import config

GENRES = config.GTZAN_GENRES
LONG_SECONDS = 240.0
MEMORY_SAMPLE_S = 0.05
SETTLE_S = 3.0  # after a phase, before reading "after": in-flight work and frees finish


def upload_callback(url: str) -> dict:
    """The dependency entry of the check callback (its output spec), from the running app."""
    with urllib.request.urlopen(url + "/_dash-dependencies", timeout=30) as response:
        deps = json.load(response)
    for dep in deps:
        if any(i["id"] == "check-upload-ref" and i["property"] == "data" for i in dep["inputs"]) \
                and "check-results" in dep["output"]:
            return dep
    raise SystemExit("bench/dashboard.py: the app has no check-your-track callback")


def callback_body(dep: dict, upload_id: str, name: str) -> bytes:
    """The callback request the page sends once the upload route stored a file (its id)."""
    outputs = [dict(zip(("id", "property"), part.rsplit(".", 1)))
               for part in dep["output"].strip(".").split("...")]
    body = {"output": dep["output"], "outputs": outputs,
            "inputs": [{"id": "check-upload-ref", "property": "data", "value": {"id": upload_id, "name": name}}],
            "changedPropIds": ["check-upload-ref.data"], "state": []}
    return json.dumps(body).encode()


def _request(url: str, data: bytes, headers: dict, timeout: float):
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:  # a refusal: its JSON names the reason
        try:
            return exc.code, json.load(exc)
        except ValueError:
            return exc.code, {}


def post(url: str, dep: dict, upload: tuple, timeout: float, *, expect_ok: bool = True) -> tuple[float, str | None, str]:
    """Upload one file as the page does (the raw file to the upload route, then the check callback
    with the id it answered): (latency in s, None or why the answer is wrong, the page's status line).

    ``expect_ok``: a result (``check-ok``) is right; otherwise an error line (a refusal by the
    upload route, or ``check-error`` from the check) is.
    """
    name, raw, mime = upload
    start = time.perf_counter()
    try:
        code, stored = _request(f"{url}/_upload?name={urllib.parse.quote(name)}", raw,
                                {"Content-Type": mime, "X-Tracklens-Upload": "1"}, timeout)
        if code != 200:
            line = str(stored.get("error", f"HTTP {code}"))
            problem = None if not expect_ok and stored.get("error", "").startswith(name) else f"upload refused: {line}"
            return time.perf_counter() - start, problem, line
        _, answer = _request(url + "/_dash-update-component", callback_body(dep, stored["id"], name),
                             {"Content-Type": "application/json"}, timeout)
    except Exception as exc:  # a failed request is counted, not fatal
        return time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:160], ""
    elapsed = time.perf_counter() - start
    status = answer.get("response", {}).get("check-status", {}).get("children") or {}
    line = str(status.get("props", {}).get("children", "")) if isinstance(status, dict) else ""
    wanted = "check-ok" if expect_ok else "check-error"
    if json.dumps(status).count(f'"{wanted}"') != 1:
        return elapsed, f"expected {wanted}, the page answered: {line[:160]}", line
    return elapsed, None, line


class MemoryWatch:
    """The resident memory of process ``pid`` (MB): before, peak and after each :meth:`phase`, and
    the CPU seconds it used in the phase (which, unlike latency, another load on the machine does
    not inflate)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.rows: list[tuple[str, float, float, float, float]] = []
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def status_mb(self, key: str) -> float:
        """A ``Vm*`` line of /proc/<pid>/status in MB (nan once the process is gone)."""
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def _sample(self) -> None:
        while not self._stop.wait(MEMORY_SAMPLE_S):
            rss = self.status_mb("VmRSS")
            if rss == rss:
                self._peak = max(self._peak, rss)

    def _reset_peak(self) -> None:
        with contextlib.suppress(OSError):  # "5" resets VmHWM (Linux >= 4.0); else only the samples count
            with open(f"/proc/{self.pid}/clear_refs", "w") as clear:
                clear.write("5")
        self._peak = self.status_mb("VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its finished children (/proc/<pid>/stat)."""
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime

    @contextlib.contextmanager
    def phase(self, label: str):
        before, cpu = self.status_mb("VmRSS"), self.cpu_seconds()
        self._reset_peak()
        yield
        time.sleep(SETTLE_S)
        peak = max(self._peak, self.status_mb("VmHWM"))
        self.rows.append((label, before, peak, self.status_mb("VmRSS"), self.cpu_seconds() - cpu))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _wav_header(channels: int, sr: int, data_bytes: int) -> bytes:
    """A 32-bit float WAV header announcing ``data_bytes`` of samples."""
    block = channels * 4
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 0xFFFFFFFF, b"WAVE", b"fmt ", 16, 3, channels, sr,
                       sr * block & 0xFFFFFFFF, block, 32, b"data", data_bytes)


def bad_files() -> list[tuple[str, bytes, str]]:
    """Uploads the page must refuse with a one-line reason: (name, bytes, mime)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    noise = rng.standard_normal(1 << 18).astype("<f4") * 0.1
    nan_wav = io.BytesIO()
    with_nan = noise[: 5 * config.SAMPLE_RATE].copy()
    with_nan[1000:1100] = np.nan
    sf.write(nan_wav, with_nan, config.SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return [
        ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 8, "audio/wav"),
        ("huge-header.wav", _wav_header(1024, 384_000, 0xFFFFFFF0) + noise.tobytes(), "audio/wav"),
        ("notes.wav", b"these are notes, not audio samples\n" * 300, "audio/wav"),
        ("nan.wav", nan_wav.getvalue(), "audio/wav"),
        ("one-hertz.wav", _wav_header(1, 1, 0xFFFFFFF0) + noise[:1 << 16].tobytes(), "audio/wav"),
    ]


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


def ten_minute_wavs(clips: list[Path], n: int) -> list[bytes]:
    """``n`` files of 10 minutes of real music (20 clips each, a seeded order) as 44.1 kHz 24-bit
    stereo WAV, 159 MB each: the longest upload at the largest format accepted at full length."""
    import soundfile as sf

    from tracklens import audio

    pool = [audio.load_audio(c, sr=44_100).y for c in clips[:24]]
    out = []
    for seed in range(n):
        order = np.random.default_rng(100 + seed).choice(len(pool), size=20, replace=False)
        y = np.concatenate([pool[i] for i in order])[: 600 * 44_100]
        buffer = io.BytesIO()
        sf.write(buffer, np.stack([y, y], axis=1), 44_100, format="WAV", subtype="PCM_24")
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
                        help="4-minute uploads in the concurrent phase (default 4; 0 skips the 4-minute phase)")
    parser.add_argument("--wav", type=int, default=1,
                        help="10-minute 24-bit stereo WAV uploads (159 MB), one at a time (default 1; 0 skips them)")
    parser.add_argument("--bad-requests", type=int, default=20,
                        help="bad uploads in the mixed phase, with a good clip after every fourth (default 20)")
    parser.add_argument("--sequential", type=int, default=2, help="uploads per size, one at a time (default 2)")
    parser.add_argument("--time-limit", type=float, default=540.0, help="seconds for the whole run (default 540)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request before it counts as failed")
    args = parser.parse_args()
    from tracklens.dashboard.app import SERVER_ENV

    for name, value in SERVER_ENV.items():  # the in-process baseline runs TensorFlow as the server does
        os.environ.setdefault(name, value)
    if min(args.clients, args.requests) < 1 or min(args.sequential, args.bad_requests, args.long_requests, args.wav) < 0:
        parser.error("--clients and --requests must be >= 1, --sequential, --long-requests, --wav and --bad-requests >= 0")
    shared = config.SHARED_DATA_DIR
    if not (shared / "gtzan" / "audio").is_dir():
        raise SystemExit(f"bench/dashboard.py: needs the real GTZAN clips in {shared / 'gtzan' / 'audio'}")
    deadline = time.monotonic() + args.time_limit

    clips = real_clips(shared)
    n_short = args.sequential + args.requests + 1
    n_long = args.sequential + args.long_requests + 1
    n_mixed_good = args.bad_requests // 4
    if n_short + n_mixed_good > len(clips):
        parser.error(f"only {len(clips)} distinct 30 s clips: lower --requests/--sequential/--bad-requests")
    print(f"preparing {n_short} x 30 s clips, {n_long if args.long_requests else 0} x {LONG_SECONDS / 60:g}-minute MP3 "
          f"and {args.wav} x 10-minute WAV files ...", flush=True)
    short = [(c.name, c.read_bytes(), "audio/ogg") for c in clips[:n_short]]
    phases = [("30 s clip", short, args.requests)]
    if args.long_requests:
        phases.append(("4 min MP3", [(f"long{i}.mp3", raw, "audio/mpeg")
                                     for i, raw in enumerate(long_files(clips, n_long))], args.long_requests))
    if args.wav:  # one at a time: the point is the memory bound of the longest, largest upload
        phases.append(("10 min WAV 24-bit", [(f"album{i}.wav", raw, "audio/wav")
                                              for i, raw in enumerate(ten_minute_wavs(clips, args.wav + 1))], 0))
    mixed = mixed_uploads(bad_files(), [(c.name, c.read_bytes(), "audio/ogg")
                                        for c in clips[n_short: n_short + n_mixed_good]], args.bad_requests)

    from tracklens.tests.dashboard_server import serve_in_subprocess

    start = time.monotonic()
    with serve_in_subprocess(timeout=300) as server:
        memory = MemoryWatch(server.pid)
        dep = upload_callback(server.url)
        print(f"dashboard ready in {time.monotonic() - start:.1f} s (start-up loads the model and warms up); "
              f"{memory.status_mb('VmRSS'):.0f} MB resident", flush=True)
        rows = []
        for label, files, n_conc in phases:
            with memory.phase(label):
                rows.append(latency_phase(server.url, dep, label, files, n_conc, args, deadline))
        with memory.phase(f"{args.bad_requests} bad + {n_mixed_good} good"):
            outcome = mixed_phase(server.url, dep, mixed, args, deadline)
        memory.stop()
    print_table(rows, clients=args.clients)
    print_memory(memory.rows)
    print_mixed(outcome, clients=args.clients)


def latency_phase(url: str, dep: dict, label: str, files: list, n_conc: int, args, deadline: float) -> tuple:
    """One size: the in-process baseline, uploads one at a time (``--sequential``, all but the
    baseline's file without a concurrent part), then ``n_conc`` at once."""
    mb = np.mean([len(raw) for _, raw, _ in files]) / 2**20
    # The plain baseline: the same analysis in this process, no HTTP, one at a time.
    base = direct_seconds(files[-1])
    seq, fails, skipped = [], 0, 0
    for upload in files[: args.sequential if n_conc else len(files) - 1]:
        if time.monotonic() > deadline:
            skipped += 1
            continue
        elapsed, error, _ = post(url, dep, upload, args.timeout)
        seq.append(elapsed)
        fails += error is not None
        if error:
            print(f"  failed: {error}")
    conc, cfails, cskipped, wall = concurrent(url, dep, files[args.sequential: args.sequential + n_conc],
                                              clients=args.clients, timeout=args.timeout, deadline=deadline)
    return label, mb, base, seq, fails + skipped, conc, cfails + cskipped, wall


def mixed_uploads(bad: list, good: list, n_bad: int) -> list[tuple[str, bytes, str, bool]]:
    """``n_bad`` bad uploads (cycling through ``bad``) with a good one after every fourth:
    (name, bytes, mime, expect_ok)."""
    out, good_left = [], list(good)
    for i in range(n_bad):
        out.append((*bad[i % len(bad)], False))
        if i % 4 == 3 and good_left:
            out.append((*good_left.pop(0), True))
    return out + [(*g, True) for g in good_left]


def mixed_phase(url: str, dep: dict, uploads: list, args, deadline: float) -> dict:
    """Post bad and good uploads ``--clients`` at once; count wrong answers, keep each error line."""
    def one(upload):
        name, raw, mime, expect_ok = upload
        if time.monotonic() > deadline:
            return name, "skipped at the time limit", ""
        _, problem, line = post(url, dep, (name, raw, mime), args.timeout, expect_ok=expect_ok)
        return name, problem, line

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        answers = list(pool.map(one, uploads))
    lines = {name: line for name, problem, line in answers if problem is None and not name.endswith(".opus")}
    return {"n": len(uploads), "wrong": [(n, p) for n, p, _ in answers if p is not None], "lines": lines,
            "wall": time.perf_counter() - start}


def direct_seconds(file) -> float:
    """Seconds for the dashboard's analysis of one upload in this process (uncached), after a warm-up."""
    from tracklens.dashboard import data, track

    if not getattr(direct_seconds, "warm", False):  # configure() clears the caches: once only
        data.configure(None)
        track.warm_up()
        direct_seconds.warm = True
    name, raw, _ = file
    start = time.perf_counter()
    track._check_track(raw, name)
    return time.perf_counter() - start


def concurrent(url: str, dep: dict, files: list, *, clients: int, timeout: float, deadline: float):
    latencies, failures, skipped = [], 0, 0

    def one(upload):
        if time.monotonic() > deadline:
            return None
        return post(url, dep, upload, timeout)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for result in pool.map(one, files):
            if result is None:
                skipped += 1
                continue
            elapsed, error, _ = result
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
              f"p95 / in-process | failed |")
    print(header)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, mb, base, seq, seq_fail, conc, conc_fail, wall in rows:
        s50 = percentiles(seq)[0]
        p50, p95, worst = percentiles(conc)
        print(f"| {label} | {mb:.1f} | {base:.2f} | {s50:.2f} | {len(conc)} | {p50:.2f} | {p95:.2f} | {worst:.2f} | "
              f"{p95 / base:.1f}x | {seq_fail + conc_fail} |")
    print()
    print("in-process: the same analysis called directly (no HTTP, no concurrency), the plain baseline;")
    print(f"p50/p95/max: {clients} uploads at once; failed: errors, timeouts and requests skipped at the time limit.")


def print_memory(rows) -> None:
    print()
    print("server memory (resident, MB; /proc/<pid>/status of the waitress process) and CPU time")
    print("| phase | before | peak | after | CPU s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, before, peak, after, cpu in rows:
        print(f"| {label} | {before:.0f} | {peak:.0f} | {after:.0f} | {cpu:.1f} |")
    print(f"peak: VmHWM reset at the phase's start (else since start) or VmRSS sampled every "
          f"{MEMORY_SAMPLE_S * 1000:.0f} ms, whichever is higher; after: {SETTLE_S:g} s after the phase's last answer.")


def print_mixed(outcome: dict, *, clients: int) -> None:
    print()
    print(f"bad uploads mixed with good ones, {clients} at once: {outcome['n']} requests in "
          f"{outcome['wall']:.1f} s, {len(outcome['wrong'])} wrong answers")
    for name, problem in outcome["wrong"][:10]:
        print(f"  wrong: {name}: {problem}")
    for name, line in outcome["lines"].items():
        print(f"  {line}")


if __name__ == "__main__":
    main()
