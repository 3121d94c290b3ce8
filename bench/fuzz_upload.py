"""Fuzz the dashboard's upload route in-process: hostile names, headers, query strings and bodies.

Run:  .venv/bin/python bench/fuzz_upload.py [--n 10000] [--seed 0]
      .venv/bin/python bench/fuzz_upload.py --seed 0 --only 4711 -v     (reproduce one input)

Each input is one POST to ``/_upload`` through Flask's test client (the route's own code: name,
type, byte cap, spool to the private folder, header probe, places for unclaimed uploads). The
body is one of tests/fuzzing.py's mutated audio files (one to three mutations of a seed in each
format, or a splice of two), or an edge case: empty, a few bytes, text, a header announcing more
than it holds, a Content-Length that lies. The name, the query string, the upload header and
the client token are drawn from hostile cases: 300-character names, paths, control and
right-to-left characters, markup, wrong or doubled extensions, bad percent-encoding, repeated
parameters. An accepted upload is claimed at once, as the page's check does, and so deleted.

The contract, checked for every input: an answer with a status the route documents (200, 400,
413, 415, 422, 503, 507), JSON ``{"error": "<one line>"}`` for a refusal that names no
internal path and holds no raw exception text (a Python exception name, "Traceback", "Errno"),
and nothing left in the private folder. A bad outcome is: another status, a broken answer, a
raw text, a leftover file, or an input slower than ``--deadline`` (a hang); a crash ends the
run (faulthandler prints where). Prints the counts by status and message kind; exits 1 on any
bad outcome.
"""

from __future__ import annotations

import argparse
import faulthandler
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from tracklens.tests import fuzzing

DOCUMENTED = {200, 400, 413, 415, 422, 503, 507}
RAW_TEXT = re.compile(r"Traceback|\b[A-Z]\w*(Error|Exception)\b|Errno|NoneType|object has no attribute|"
                      r"invalid literal|<built-in|0x[0-9a-f]{6,}|tracklens-uploads-|/tmp/")
EXTENSIONS = (".wav", ".mp3", ".ogg", ".opus", ".flac", ".m4a", ".WAV", ".Mp3", ".aiff", ".au", ".txt", ".exe",
              ".wav.exe", ".exe.wav", "", ".", ".wav ", ".wav\x00.exe", ".wav/", ".w" + "a" * 40)
NAME_STEMS = ("song", "a" * 300, "../../etc/passwd", "C:\\Users\\x\\song", "/abs/path/song", "\u202egnos",
              '<b style="font-size:90px">BIG', '<a href="mailto:x@evil.example">x</a>', "tab\tnew\nline\r",
              "\x00\x01\x1b[31mred", "名前", "😀" * 50, "%00%2e%2e", "   ", "-", ".hidden", "con", "a/b\\c")


def hostile_request(rng, body: bytes, seed_name: str) -> dict:
    """The request parts of one input: name, query string, headers and environ overrides."""
    if rng.random() < 0.5:
        name = seed_name
    else:
        stem = NAME_STEMS[int(rng.integers(len(NAME_STEMS)))]
        name = stem + (EXTENSIONS[int(rng.integers(len(EXTENSIONS)))] if rng.random() < 0.9 else
                       Path(seed_name).suffix)
    from urllib.parse import quote

    query = "name=" + quote(name, safe="")
    roll = rng.random()
    if roll < 0.05:
        query = ""  # no name
    elif roll < 0.10:
        query += "&name=other.txt"  # repeated
    elif roll < 0.15:
        query = "name=%" + "%zz" * int(rng.integers(1, 5)) + ".wav"  # broken percent-encoding
    elif roll < 0.18:
        query = "name=" + "%ff%fe" * 20 + ".wav"  # not UTF-8
    headers = {"X-Tracklens-Upload": "1"}
    roll = rng.random()
    if roll < 0.04:
        del headers["X-Tracklens-Upload"]
    elif roll < 0.06:
        headers["X-Tracklens-Upload"] = ["0", "true", "1 ", ""][int(rng.integers(4))]
    if rng.random() < 0.5:
        headers["X-Tracklens-Client"] = (str(rng.integers(1 << 62)) if rng.random() < 0.9 else "x" * 5000)
    environ = {}
    if rng.random() < 0.05:  # a Content-Length that lies (more or less than the body)
        environ["CONTENT_LENGTH"] = str(max(0, len(body) + int(rng.integers(-len(body) - 1, 10_000))))
    return {"query": query, "headers": headers, "environ": environ}


def edge_body(rng) -> bytes:
    choice = int(rng.integers(6))
    if choice == 0:
        return b""
    if choice == 1:
        return bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    if choice == 2:
        return b"hello, this is text, not audio\n" * int(rng.integers(1, 200))
    if choice == 3:  # a WAV header announcing 10 hours of 96 kHz 8-channel float, then nothing
        import struct

        return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 0xFFFFFFF0, b"WAVE", b"fmt ", 16, 3, 8, 96000,
                           96000 * 32, 32, 32, b"data", 0xFFFFFFF0)
    if choice == 4:
        return b"ID3" + bytes(rng.integers(0, 256, 2000, dtype=np.uint8))
    return b"OggS" + bytes(4000)


def check_answer(response, names: tuple[str, ...]) -> tuple[str, str]:
    """(outcome, kind): "accepted", "refused" or a bad outcome, and the message kind."""
    status = response.status_code
    if status not in DOCUMENTED:
        return "bad status", f"{status}: {response.get_data(as_text=True)[:200]!r}"
    try:
        body = response.get_json(force=True)
    except Exception:  # noqa: BLE001 - any unparsable answer is a bad outcome
        body = None
    if not isinstance(body, dict):
        return "broken answer", f"{status}: {response.get_data(as_text=True)[:200]!r}"
    if status == 200:
        return ("accepted", "stored") if isinstance(body.get("id"), str) else ("broken answer", repr(body)[:200])
    message = body.get("error")
    if not isinstance(message, str) or not message or "\n" in message or "\r" in message:
        return "broken answer", f"{status}: {message!r}"[:200]
    without_name = message
    for name in names:
        without_name = without_name.replace(name, "")
    if RAW_TEXT.search(without_name):
        return "raw text", f"{status}: {message[:300]}"
    # The kind: the message without the name in front (the harness cannot always say which name
    # the route decoded from a broken query string).
    return "refused", f"{status} " + fuzzing.message_kind(message.partition(": ")[2] or message)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="inputs (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="run seed: the same seed gives the same inputs")
    parser.add_argument("--deadline", type=float, default=10.0, help="seconds one input may take (default 10)")
    parser.add_argument("--only", type=int, nargs="+", help="examine only these input indices")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every input's outcome")
    args = parser.parse_args(argv)

    from tracklens.dashboard import app as app_module, data, uploads
    from tracklens.dashboard.track import display_name

    data.configure()
    client = app_module.get_app().server.test_client()
    faulthandler.enable()
    client.post("/" + uploads.ROUTE, query_string="name=warm.wav", data=b"RIFF", headers={uploads.HEADER: "1"})
    counts, bad, slowest = Counter(), [], (0.0, None)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tracklens-fuzz-upload-") as tmp:
        seeds = [(p.name, p.read_bytes()) for p in fuzzing.make_seeds(Path(tmp))]
        for index in args.only or range(args.n):
            rng = np.random.default_rng([args.seed, index, 22])
            if rng.random() < 0.85:
                made = fuzzing.make_input(seeds, args.seed, index)
                body, seed_name, how = made.data, made.name, made.how
            else:
                body, seed_name, how = edge_body(rng), "edge.wav", "edge case"
            request = hostile_request(rng, body, seed_name)
            faulthandler.dump_traceback_later(args.deadline * 3, exit=True)  # a true hang ends the run, with where
            t0 = time.monotonic()
            response = client.post("/" + uploads.ROUTE, query_string=request["query"], data=body,
                                   headers=request["headers"], environ_overrides=request["environ"])
            elapsed = time.monotonic() - t0
            faulthandler.cancel_dump_traceback_later()
            slowest = max(slowest, (elapsed, index))
            from urllib.parse import parse_qs

            raw_names = parse_qs(request["query"]).get("name", []) or [None]
            names = tuple({display_name(n) for n in raw_names} | {"upload"})
            outcome, kind = check_answer(response, names)
            if outcome == "accepted":
                with uploads.claim(response.get_json()["id"]):
                    pass  # the check would run here; the file is deleted when it ends
            leftovers = list(uploads._private_folder().iterdir())
            if outcome in ("accepted", "refused") and leftovers:
                outcome, kind = "leftover file", f"{len(leftovers)} file(s) after the answer"
                for path in leftovers:
                    path.unlink(missing_ok=True)
            if elapsed > args.deadline:
                outcome, kind = "slow (hang)", f"{elapsed:.1f} s"
            counts[(outcome, kind if outcome in ("accepted", "refused") else "")] += 1
            line = f"#{index} ({how}; name={request['query'][:60]!r}): {outcome}: {kind}"
            if outcome not in ("accepted", "refused"):
                bad.append(index)
                print("BAD " + line, file=sys.stderr, flush=True)
            elif args.verbose:
                print(line)
            done = len(args.only or []) or index + 1
            if done % 1000 == 0:
                print(f"{done} inputs, {len(bad)} bad, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    total = sum(counts.values())
    seconds = time.monotonic() - started
    print(f"{total} inputs to the upload route in {seconds:.0f} s ({seconds / max(total, 1) * 1000:.1f} ms each; "
          f"slowest {slowest[0] * 1000:.0f} ms: #{slowest[1]})\n")
    print(f"{'outcome':<14} {'status and kind':<62} {'count':>7}")
    for (outcome, kind), n in sorted(counts.items(), key=lambda kv: (kv[0][0] != "accepted", kv[0][0], -kv[1])):
        print(f"{outcome:<14} {kind[:62]:<62} {n:>7}")
    print(f"\nbad outcomes: {len(bad)} (crashes: 0 — the run finished; hangs: "
          f"{sum(n for (o, _), n in counts.items() if o == 'slow (hang)')})")
    if bad:
        print(f"reproduce with: bench/fuzz_upload.py --seed {args.seed} --only " + " ".join(map(str, bad[:20])))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
