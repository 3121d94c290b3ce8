"""The upload route (dashboard/uploads.py): what is stored, what is refused and how, size and length caps."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from tracklens import config

from dashboard_helpers import _wav_bytes, _text, _upload, _demo_clip, _wav_header


def test_upload_route_stores_the_file_for_one_check(app, pages, demo_catalogue):
    from tracklens.dashboard import uploads

    raw = _demo_clip(demo_catalogue).read_bytes()
    code, answer = _upload(app, raw, "../../song.wav")
    assert code == 200 and answer["name"] == "song.wav" and answer["duration_s"] == pytest.approx(6.0, abs=0.05)
    with uploads.claim(answer["id"]) as stored:
        assert stored.path.read_bytes() == raw and stored.path.parent.name.startswith("tracklens-uploads-")
        assert stored.sha256 == hashlib.sha256(raw).hexdigest()
    assert not stored.path.exists()  # deleted once checked
    status, results, summary, player = pages["check"].check_upload({"id": answer["id"], "name": "song.wav"})
    assert "no longer on the server" in _text(status) and results == [] and player == {"id": answer["id"], "ok": False}


@pytest.mark.parametrize("name, raw, headers, code, message", [
    ("notes.txt", b"hello", {}, 415, "notes.txt: unsupported file type '.txt'"),
    ("empty.wav", b"", {}, 400, "empty.wav: empty file"),
    ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(2048), {}, 422, "corrupt.wav: not readable"),
    ("long.wav", _wav_header(channels=1, sr=4_000, bits=8, seconds=660) + b"\x80" * (660 * 4_000), {}, 413,
     "long.wav: too long (11.0 min); the limit is 10 min"),
    ("song.wav", b"RIFF", {"X-Tracklens-Upload": "0"}, 400, "header"),
], ids=["type", "empty", "unreadable", "too-long-by-header", "no-header"])
def test_upload_route_refuses_with_one_line_and_keeps_nothing(app, name, raw, headers, code, message):
    from tracklens.dashboard import uploads

    before = uploads.pending_count()
    status, answer = _upload(app, raw, name, **headers)
    assert status == code and message in answer["error"] and "\n" not in answer["error"]
    assert "tracklens-uploads-" not in answer["error"]  # the stored file's name is never shown
    assert uploads.pending_count() == before
    if uploads._folder:
        assert list(uploads._folder[0].iterdir()) == []


def test_upload_over_the_byte_cap_is_refused_before_reading(app):
    from tracklens.dashboard import data, uploads

    class Unread(io.RawIOBase):
        def read(self, size=-1):
            raise AssertionError("the body was read")

    with pytest.raises(uploads.UploadRefused, match=r"big\.wav: too large \(895\.0 MB\); files up to 895 MB "
                                                    r"\(10 minutes of 32-bit 192 kHz stereo WAV\)") as refused:
        uploads.store(Unread(), filename="big.wav", content_length=data.MAX_UPLOAD_BYTES + 1)
    assert refused.value.status == 413
    response = _post_stream(app, "big.wav", Unread(), data.MAX_UPLOAD_BYTES + 1)
    assert response.status_code == 413 and "big.wav: too large" in response.get_json()["error"]


def _post_stream(app, name: str, stream, size: int):
    """POST ``stream`` (``size`` bytes, never held whole) to the upload route."""
    from tracklens.dashboard import uploads

    return app.server.test_client().post(f"/{uploads.ROUTE}?name={name}", headers={uploads.HEADER: "1"},
                                         environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(size)})


class _Stream(io.RawIOBase):
    """A header then ``n_zero`` zero bytes, read in pieces: a big upload that never sits in memory."""

    def __init__(self, header: bytes, n_zero: int):
        self.header, self.left = header, n_zero

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.header:
            n = min(len(buffer), len(self.header))
            buffer[:n], self.header = self.header[:n], self.header[n:]
            return n
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_a_ten_minute_24_bit_stereo_wav_is_accepted(app):
    """The limit is a duration: 10 minutes of 44.1 kHz 24-bit stereo (159 MB) passes the byte cap
    and the header check (the old 50 MB cap stopped 16-bit stereo at 4:57)."""
    from tracklens.dashboard import data, uploads

    header = _wav_header(channels=2, sr=44_100, bits=24, seconds=600)
    size = len(header) + 600 * 44_100 * 2 * 3
    assert size < data.MAX_UPLOAD_BYTES
    response = _post_stream(app, "album-track.wav", _Stream(header, size - len(header)), size)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["duration_s"] == pytest.approx(600.0)
    with uploads.claim(response.get_json()["id"]) as stored:
        assert stored.path.stat().st_size == size


def test_check_refuses_too_long_after_decoding(app, pages, monkeypatch):
    """A file whose header says less than it holds is still stopped by the decoder's limit."""
    from tracklens.dashboard import data

    y = 0.3 * np.sin(np.arange(4 * config.SAMPLE_RATE) * 0.05).astype(np.float32)
    code, answer = _upload(app, _wav_bytes(y), "long.wav")
    monkeypatch.setattr(data, "MAX_UPLOAD_SECONDS", 2.0)
    status, _, _, _ = pages["check"].check_upload({"id": answer["id"], "name": "long.wav"})
    assert "long.wav: too long" in _text(status)
