"""Check your track in a real browser: upload -> every figure drawn, timed in headless Chromium.

Starts `tracklens dashboard` (waitress, a private tracklens home, the real Top Hits table) on a
free port and drives Debian's Chromium (/usr/bin/chromium) with Playwright, as a user would:
open /check, choose a file, wait until every figure of the result is drawn. Per upload it
records three times (seconds, from the moment the file is chosen):

- ``answered``: the check callback's answer has arrived (the server's part: upload, decode,
  blend, analyse, compare, render, plus the transfer);
- ``drawn``: every figure's SVG is in the page (``answered`` + the browser's own part);
- ``browser_s`` = ``drawn - answered``: what the page costs after the server answered (issue 19:
  1.3-4.5 s under load with the base64 data: URI player and ~1 MB answers).

and the answer's size in bytes, and ``server_cpu_s``: the CPU seconds the dashboard process (and
its ffmpeg children) spent from choosing the file to the last figure (less noisy than the
seconds on a shared machine). The load average is printed before and after. Each 30 s GTZAN clip is uploaded once (a different clip each
time, so no cache answers), each in a fresh tab, the first one right after the page opened (the
"first upload in a tab"); ``--long`` adds a 6-minute 48 kHz 16-bit stereo WAV made of twelve
clips joined. Prints p50 / p95 / max per kind.

    .venv/bin/python bench/browser.py --clips 8          # 8 x 30 s
    .venv/bin/python bench/browser.py --clips 4 --long 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
GRAPHS = ("#check-blend", "#check-timeline", "#check-spectrogram", "#check-chromagram", "#check-profile")
TIMEOUT_MS = 600_000


def _long_wav(clips: list[Path], out: Path, *, seconds: float = 360.0, sr: int = 48_000) -> Path:
    """A ``seconds`` long 48 kHz stereo WAV of clips joined (left and right: two orders)."""
    import soundfile as sf

    from tracklens import audio

    parts = [audio.load_audio(c, sr=sr).y for c in clips]
    mono = np.concatenate(parts)[: int(seconds * sr)]
    other = np.concatenate(parts[::-1])[: len(mono)]
    sf.write(out, np.stack([mono, other], axis=1), sr, subtype="PCM_16")
    return out


def _process_cpu_s(pid: int) -> float:
    """CPU seconds of process ``pid`` and its waited-for children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _time_one(browser, url: str, path: Path, pid: int | None = None) -> dict:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        page.goto(url + "/check")
        page.wait_for_selector("#check-upload input[type=file]")
        page.wait_for_load_state("networkidle")  # the page as a user sees it before choosing a file
        answered = {}

        def on_response(response):
            if "_dash-update-component" in response.url and "check-upload-ref" in (response.request.post_data or ""):
                answered["t"] = time.perf_counter()
                answered["bytes"] = len(response.body())

        page.on("response", on_response)
        cpu0 = _process_cpu_s(pid) if pid else float("nan")
        start = time.perf_counter()
        page.set_input_files("#check-upload input[type=file]", str(path))
        page.wait_for_selector("#check-ok, #check-error", timeout=TIMEOUT_MS)
        if page.query_selector("#check-error"):
            return {"file": path.name, "error": page.inner_text("#check-error")}
        for graph in GRAPHS:
            page.wait_for_selector(f"{graph} .main-svg", timeout=TIMEOUT_MS)
        drawn = time.perf_counter()
        server_cpu = _process_cpu_s(pid) - cpu0 if pid else float("nan")
        return {"file": path.name, "answered": answered["t"] - start, "drawn": drawn - start,
                "browser_s": drawn - answered["t"], "bytes": answered["bytes"], "server_cpu_s": server_cpu}
    finally:
        context.close()


def _summary(kind: str, rows: list[dict]) -> None:
    good = [r for r in rows if "error" not in r]
    print(f"\n{kind}: {len(good)} of {len(rows)} checked")
    for r in rows:
        print("  " + (f"{r['file']}: ERROR {r['error']}" if "error" in r else
                      f"{r['file']}: answered {r['answered']:.2f} s, drawn {r['drawn']:.2f} s "
                      f"(browser {r['browser_s']:.2f} s), answer {r['bytes'] / 1024:.0f} KB, "
                      f"server CPU {r['server_cpu_s']:.2f} s"))
    if good:
        for key in ("answered", "drawn", "browser_s", "server_cpu_s"):
            values = np.array([r[key] for r in good])
            print(f"  {key:<9} p50 {np.percentile(values, 50):.2f} s  p95 {np.percentile(values, 95):.2f} s  "
                  f"max {values.max():.2f} s")
        print(f"  answer    max {max(r['bytes'] for r in good) / 1024:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8, help="30 s GTZAN clips to upload (one each)")
    parser.add_argument("--long", type=int, default=0, help="6-minute 48 kHz stereo WAVs to upload")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tracklens import config
    from tracklens.tests.dashboard_server import serve_in_subprocess

    gtzan = config.SHARED_DATA_DIR / "gtzan" / "audio"
    clips = sorted(gtzan.glob("*/*.opus"))
    rng = np.random.default_rng(0)
    chosen = [clips[i] for i in rng.choice(len(clips), size=min(args.clips + 12 * args.long, len(clips)), replace=False)]
    with tempfile.TemporaryDirectory(prefix="tracklens-bench-browser-") as tmp:
        tmp = Path(tmp)
        longs = [_long_wav(chosen[args.clips + 12 * i: args.clips + 12 * (i + 1)], tmp / f"long-{i}.wav")
                 for i in range(args.long)]
        home = tmp / "home"
        home.mkdir()
        with serve_in_subprocess(env={"TRACKLENS_HOME": str(home)}, log_path=tmp / "server.log", timeout=300) as served, \
                sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            print(f"tracklens dashboard at {served.url}; {os.cpu_count()} cores; Chromium {browser.version}; "
                  f"{_load()}", flush=True)
            _summary("30 s GTZAN clips (Opus), each in a fresh tab", [_time_one(browser, served.url, c, served.pid)
                                                                     for c in chosen[:args.clips]])
            if longs:
                _summary("6-minute 48 kHz 16-bit stereo WAV", [_time_one(browser, served.url, w, served.pid)
                                                               for w in longs])
            browser.close()
            print(f"\n{_load()}")


if __name__ == "__main__":
    main()
