"""Seeded fuzzing of the decoder and the feature engine, shared by tests/test_fuzz.py (a few
hundred inputs) and bench/fuzz.py (10,000 and more).

Seeds are small files synthesised in each format (WAV, float WAV, FLAC, AIFF, AU with
soundfile; MP3, Ogg Vorbis, Opus and M4A with ffmpeg). Each input is one to three mutations of
a seed: bit flips, byte overwrites, truncations, header fields set to edge values (WAV channels,
sample rate, sizes; FLAC STREAMINFO; Opus/Vorbis channels and rate; integers after MP4 atoms),
zeroed, repeated or inserted ranges, and splices of two seeds. Input ``i`` of seed ``s`` is the
same file on every machine, so a bad outcome is reproduced with ``bench/fuzz.py --seed s --only i``.

Every input runs in a worker process (a few long-lived ones, restarted after a crash or a
timeout) through ``audio.load_audio`` (one in five through ``audio.load_audio_bytes``, the
dashboard's path) and, when it decodes, ``features.featurize_clip``. The contract: it decodes or
raises a TracklensError; any other exception, a hang past the deadline or a crash is a bug.
"""

from __future__ import annotations

import os
import re
import signal
import struct
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

DEADLINE_S = 10.0
# Seeds last 1.5 s; header mutations can stretch them (a rate of 4 kHz makes 1.5 s at 44.1 kHz
# last 16 s). Decoding at most 10 s keeps featurize_clip near 1 s, so the deadline measures
# hangs, not a busy machine (30 s of audio took 4.3 s to featurize on the shared 2 cores).
MAX_DURATION_S = 10.0
BYTES_SHARE = 0.2  # inputs decoded from memory, like dashboard uploads
SEED_SECONDS = 1.5
BAD_OUTCOMES = ("other exception", "timeout", "crash")


# --- seeds ---------------------------------------------------------------------------------------


def make_seeds(folder: Path) -> list[Path]:
    """Write the seed files into ``folder`` (formats that need ffmpeg only when it is installed)."""
    import shutil
    import subprocess

    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(SEED_SECONDS * 44100)) / 44100
    music = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2 + rng.normal(0, 0.02, t.size)
    stereo = np.stack([music, np.roll(music, 500)], axis=1).astype(np.float32)
    seeds = []
    for name, data, subtype, rate in (("pcm16.wav", music, "PCM_16", 22050), ("stereo.wav", stereo, "PCM_16", 44100),
                                      ("float.wav", stereo, "FLOAT", 48000), ("seed.flac", stereo, "PCM_16", 44100),
                                      ("seed.aiff", music, "PCM_16", 22050), ("seed.au", music, "PCM_16", 8000)):
        sf.write(folder / name, data[: int(SEED_SECONDS * rate)], rate, subtype=subtype)
        seeds.append(folder / name)
    if shutil.which("ffmpeg"):
        for name, codec in (("seed.mp3", ["-c:a", "libmp3lame", "-b:a", "64k"]), ("seed.ogg", ["-c:a", "libvorbis"]),
                            ("seed.opus", ["-c:a", "libopus", "-b:a", "32k"]), ("seed.m4a", ["-c:a", "aac", "-b:a", "64k"])):
            subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(folder / "stereo.wav"), *codec,
                            str(folder / name)], check=True)
            seeds.append(folder / name)
    return seeds


# --- mutations -----------------------------------------------------------------------------------

_EDGE_INTS = (0, 1, 2, 3, 7, 8, 255, 256, 1000, 4000, 65535, 65536, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
# (marker, offset of the field from the marker's first byte, struct format) of header fields
# decoders trust: WAV fmt/data/RIFF sizes, AIFF COMM, AU, OpusHead, Vorbis identification, MP4 atoms
_FIELDS = (
    (b"fmt ", 10, "<H"), (b"fmt ", 12, "<I"), (b"fmt ", 16, "<I"), (b"fmt ", 20, "<H"), (b"fmt ", 22, "<H"),
    (b"data", 4, "<I"), (b"RIFF", 4, "<I"), (b"COMM", 8, ">H"), (b"COMM", 10, ">I"), (b"COMM", 16, ">H"),
    (b".snd", 4, ">I"), (b".snd", 8, ">I"), (b".snd", 16, ">I"), (b".snd", 20, ">I"),
    (b"OpusHead", 9, "<B"), (b"OpusHead", 12, "<I"), (b"OpusHead", 18, "<B"),
    (b"\x01vorbis", 11, "<B"), (b"\x01vorbis", 12, "<I"),
    (b"mp4a", 20, ">H"), (b"mp4a", 28, ">I"), (b"mdhd", 16, ">I"), (b"mdhd", 20, ">I"), (b"stsz", 12, ">I"),
    (b"stco", 8, ">I"), (b"esds", 30, ">I"),
)


def _flip_bits(data: bytearray, rng) -> str:
    n = int(rng.integers(1, 33))
    for pos in rng.integers(0, len(data) * 8, n):
        data[pos // 8] ^= 1 << (pos % 8)
    return f"flip {n} bits"


def _overwrite_bytes(data: bytearray, rng) -> str:
    n = int(rng.integers(1, 17))
    span = min(len(data), 512) if rng.random() < 0.6 else len(data)  # headers live at the start
    for pos in rng.integers(0, span, n):
        data[pos] = int(rng.integers(0, 256))
    return f"overwrite {n} bytes"


def _truncate(data: bytearray, rng) -> str:
    keep = int(rng.integers(0, len(data)))
    del data[keep:]
    return f"truncate to {keep}"


def _header_field(data: bytearray, rng) -> str:
    present = [(m, o, f) for m, o, f in _FIELDS if m in data]
    if not present:
        return _overwrite_bytes(data, rng)
    marker, offset, fmt = present[int(rng.integers(len(present)))]
    pos = data.find(marker) + offset
    width = struct.calcsize(fmt)
    value = int(rng.choice(_EDGE_INTS)) if rng.random() < 0.8 else int(rng.integers(0, 2 ** (8 * width)))
    value &= 2 ** (8 * width) - 1
    if pos + width > len(data):
        return f"{marker!r} field past the end"
    struct.pack_into(fmt, data, pos, value)
    return f"{marker.decode('latin-1').strip()}+{offset} = {value}"


def _flac_streaminfo(data: bytearray, rng) -> str:
    if data[:4] != b"fLaC" or len(data) < 26:
        return _flip_bits(data, rng)
    pos = int(rng.integers(8, 26))  # block sizes, frame sizes, rate/channels/bits, total samples
    data[pos] = int(rng.choice([0, 0xFF, int(rng.integers(0, 256))]))
    return f"STREAMINFO byte {pos}"


def _zero_range(data: bytearray, rng) -> str:
    start = int(rng.integers(0, len(data)))
    end = min(len(data), start + int(rng.integers(1, 4096)))
    data[start:end] = bytes(end - start)
    return f"zero {start}:{end}"


def _repeat_range(data: bytearray, rng) -> str:
    start = int(rng.integers(0, len(data)))
    piece = data[start: start + int(rng.integers(1, 8192))]
    at = int(rng.integers(0, len(data)))
    data[at:at] = piece
    return f"repeat {len(piece)} bytes at {at}"


def _insert_random(data: bytearray, rng) -> str:
    at = int(rng.integers(0, len(data)))
    data[at:at] = rng.bytes(int(rng.integers(1, 256)))
    return f"insert at {at}"


_MUTATIONS = (_flip_bits, _overwrite_bytes, _truncate, _header_field, _header_field, _flac_streaminfo,
              _zero_range, _repeat_range, _insert_random)


@dataclass(frozen=True)
class FuzzInput:
    index: int
    name: str  # the seed's name: its extension picks the temp-file suffix of load_audio_bytes
    data: bytes
    via_bytes: bool
    how: str


def make_input(seeds: list[tuple[str, bytes]], seed: int, index: int) -> FuzzInput:
    """Input ``index`` of run ``seed``: 1-3 mutations of one seed, or a splice of two."""
    rng = np.random.default_rng([seed, index])
    name, original = seeds[int(rng.integers(len(seeds)))]
    data = bytearray(original)
    steps = []
    if rng.random() < 0.15:
        other_name, other = seeds[int(rng.integers(len(seeds)))]
        cut, resume = int(rng.integers(0, len(data))), int(rng.integers(0, len(other)))
        data = data[:cut] + bytearray(other[resume:])
        steps.append(f"splice {name}[:{cut}] + {other_name}[{resume}:]")
    for _ in range(int(rng.integers(1, 4))):
        if len(data) < 2:
            break
        steps.append(_MUTATIONS[int(rng.integers(len(_MUTATIONS)))](data, rng))
    return FuzzInput(index, name, bytes(data), bool(rng.random() < BYTES_SHARE), f"{name}: " + "; ".join(steps))


# --- one input, in a worker ----------------------------------------------------------------------


def examine(path: str, via_bytes: bool) -> tuple[str, str]:
    """(outcome, detail) of decoding ``path`` and featurizing what decodes."""
    from tracklens import audio, features
    from tracklens.errors import TracklensError

    name = Path(path).name
    try:
        if via_bytes:
            clip = audio.load_audio_bytes(Path(path).read_bytes(), name=name, max_duration=MAX_DURATION_S)
        else:
            clip = audio.load_audio(path, max_duration=MAX_DURATION_S)
        features.featurize_clip(clip)
    except TracklensError as exc:
        return "project error", message_kind(str(exc), (path, name))
    except Exception as exc:  # noqa: BLE001 - any other type is what the fuzzer looks for
        return "other exception", f"{type(exc).__name__}: {str(exc)[:300]}"
    return "decoded", ""


def message_kind(message: str, names: Iterable[str] = ()) -> str:
    """A project error's kind: its text without the file name, numbers and parenthesised detail
    ("unsupported channel count", "not readable as audio: no audio stream found", ...)."""
    for name in names:
        message = message.removeprefix(f"{name}: ")
    return re.sub(r"\s*[(\d;].*$", "", message).strip() or message[:60]


def _serve(conn, examine_fn, warm_up: bool) -> None:
    """Worker loop: ``examine_fn`` each (path, via_bytes) sent until None. ``warm_up`` first
    (imports and numba compilation take ~15 s on a busy machine: not an input's deadline)."""
    os.setpgrp()  # its own process group: a kill on timeout takes ffmpeg children with it
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # libmpg123 and librosa chatter about damaged input
    if warm_up:
        import tempfile

        import soundfile as sf

        with tempfile.TemporaryDirectory(prefix="fuzz-warmup-") as tmp:
            warm = Path(tmp) / "warm.wav"
            sf.write(warm, 0.3 * np.sin(np.arange(2 * 22050) / 5.0), 22050)
            examine_fn(str(warm), False)
    conn.send("ready")
    while (task := conn.recv()) is not None:
        conn.send(examine_fn(*task))


def examine_harness_probe(path: str, via_bytes: bool) -> tuple[str, str]:
    """For testing the runner itself: an input reading ``hang`` hangs, ``crash`` dies by SIGSEGV."""
    content = Path(path).read_bytes()
    if content == b"hang":
        time.sleep(3600)
    if content == b"crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    return "decoded", ""


# --- the runner: a few long-lived workers with a deadline per input ---------------------------------


@dataclass
class Result:
    input: FuzzInput
    outcome: str  # "decoded", "project error", "other exception", "timeout" or "crash"
    detail: str
    seconds: float


class _Worker:
    def __init__(self, context, examine_fn, warm_up: bool):
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=_serve, args=(child, examine_fn, warm_up), daemon=True)
        self.proc.start()
        child.close()
        self.task: tuple[FuzzInput, Path, float] | None = None
        self.ready = False

    def stop(self, *, kill: bool = False) -> None:
        if kill:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def run(inputs: Iterable[FuzzInput], workdir: Path, *, jobs: int = 2, deadline_s: float = DEADLINE_S,
        startup_s: float = 180.0, examine_fn=examine, warm_up: bool = True) -> Iterator[Result]:
    """``examine_fn`` (a module-level function: workers import it) every input in ``jobs``
    worker processes; yield a Result per input, in the order they finish."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")  # no fork of a parent with threads and open files

    def new_worker() -> _Worker:
        worker = _Worker(context, examine_fn, warm_up)
        started[worker] = time.monotonic()
        return worker

    workdir.mkdir(parents=True, exist_ok=True)
    pending = iter(inputs)
    started: dict[_Worker, float] = {}
    workers = [new_worker() for _ in range(jobs)]
    try:
        while workers:
            for w in list(workers):
                if w.ready and w.task is None:
                    item = next(pending, None)
                    if item is None:
                        w.stop()
                        workers.remove(w)
                        continue
                    path = workdir / f"{item.index}{Path(item.name).suffix}"
                    path.write_bytes(item.data)
                    w.task = (item, path, time.monotonic())
                    w.conn.send((str(path), item.via_bytes))
            if not workers:
                break
            now = time.monotonic()
            waits = [w.task[2] + deadline_s - now if w.task else started[w] + startup_s - now for w in workers]
            ready = wait([w.conn for w in workers], timeout=max(0.0, min(waits)))
            for w in list(workers):
                result = _collect(w, ready, deadline_s, startup_s, started)
                if result is None:
                    continue
                if result.outcome in ("timeout", "crash"):  # replace the dead or killed worker
                    workers[workers.index(w)] = new_worker()
                yield result
    finally:
        for w in workers:
            w.stop(kill=True)


def _collect(w: _Worker, ready, deadline_s: float, startup_s: float, started: dict) -> Result | None:
    """The Result of worker ``w`` when it has one (answered, died or overran); None otherwise."""
    now = time.monotonic()
    if w.conn in ready:
        try:
            message = w.conn.recv()
        except (EOFError, OSError):
            w.proc.join(5)
            code = w.proc.exitcode
            detail = signal.Signals(-code).name if code is not None and code < 0 else f"exit status {code}"
            if w.task is None:
                raise RuntimeError(f"a fuzz worker died while starting ({detail})") from None
            w.stop(kill=True)
            return _finish(w, "crash", detail)
        if message == "ready":
            w.ready = True
            return None
        return _finish(w, message[0], message[1])
    if w.task is not None and now - w.task[2] > deadline_s:
        w.stop(kill=True)
        return _finish(w, "timeout", f"no answer in {deadline_s:g} s")
    if w.task is None and not w.ready and now - started[w] > startup_s:
        raise RuntimeError(f"a fuzz worker did not start within {startup_s:g} s")
    return None


def _finish(w: _Worker, outcome: str, detail: str) -> Result:
    """The Result of ``w``'s task; its input file is removed (bench runs write 10,000 of them)."""
    item, path, t0 = w.task
    w.task = None
    path.unlink(missing_ok=True)
    return Result(item, outcome, detail, time.monotonic() - t0)


def outcome_counts(results: Iterable[Result]) -> Counter:
    """Counts by (outcome, kind): project errors by message kind, other exceptions by type."""
    counts: Counter = Counter()
    for r in results:
        kind = r.detail if r.outcome == "project error" else r.detail.split(":")[0] if r.outcome == "other exception" else ""
        counts[(r.outcome, kind)] += 1
    return counts


def fuzz(n: int, *, seed: int, workdir: Path, jobs: int = 2, deadline_s: float = DEADLINE_S,
         only: Iterable[int] | None = None) -> Iterator[Result]:
    """Make the seeds in ``workdir`` and yield the Result of each of ``n`` inputs (or of ``only`` those)."""
    seeds = [(p.name, p.read_bytes()) for p in make_seeds(workdir / "seeds")]
    indices = list(only) if only is not None else range(n)
    inputs = (make_input(seeds, seed, i) for i in indices)
    yield from run(inputs, workdir / "inputs", jobs=jobs, deadline_s=deadline_s)
