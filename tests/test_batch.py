"""The batch runner: sources and checksums, the cache, the Dask path where workers write parts
(resume, stale parts, layouts), reading frames back, fsspec URLs, a real multi-process cluster,
the trainers on the partitioned table and the embedding tasks that plug in."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tracklens import batch, config, features, fileio
from tracklens.errors import TracklensError

SR = config.SAMPLE_RATE
CALLS: list[str] = []  # files the fake task ran on (threads clusters share this process)


def count_bytes(path: str, params: dict) -> batch.FileResult:
    """A cheap per-file function: a track row and one segment row from the file's size."""
    CALLS.append(Path(path).name)
    data = Path(path).read_bytes()
    if data.startswith(b"bad"):
        raise TracklensError(f"{path}: unusable ({params['tag']})")
    n = len(data)
    rows = [{"segment": -1, "start_s": 0.0, "end_s": float(n), "size": n},
            {"segment": 0, "start_s": 0.0, "end_s": 1.0, "size": n}]
    return batch.FileResult(rows=rows, blocks={"vec": np.full((2, 3), n / 7, np.float32)},
                            frames={"grid": np.full((1, 2, 4), n % 11, np.float32)})


FAKE = batch.Task(name="fake", run_file=count_bytes, params={"tag": "t"}, version=1,
                  columns=(*batch.ID_COLUMNS, "segment", "start_s", "end_s", "size", "v0", "v1", "v2"),
                  dtypes={"segment": "int64", "size": "int64"}, blocks={"vec": ("v0", "v1", "v2")},
                  frames={"grid": (2, 4)}, frames_meta={"what": "fake"})


@pytest.fixture
def files(tmp_path) -> pd.DataFrame:
    """Five small files and one the fake task refuses, as a manifest frame."""
    folder = tmp_path / "files"
    folder.mkdir()
    names = []
    for i in range(6):
        name = f"clip{i}.wav"
        (folder / name).write_bytes(b"bad" if i == 3 else bytes(10 + 5 * i))
        names.append(str(folder / name))
    CALLS.clear()
    return pd.DataFrame({"path": names, "label": ["a", "b"] * 3})


@pytest.fixture(scope="module")
def threads_cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def memory_url(name: str) -> str:
    """A fresh place on fsspec's in-memory filesystem (one per process: threads clusters only)."""
    return f"memory://{uuid.uuid4().hex}/{name}"


def listing(url: str) -> list[str]:
    fs, root = batch._fs(url)
    return sorted(p[len(root) + 1:] for p in fs.find(root))


def read_json(url: str):
    fs, path = batch._fs(url)
    return json.loads(fs.cat(path))


# --- the Dask path: workers write parts -------------------------------------------------------------


def test_dask_parts_read_back_as_the_local_table(files, tmp_path, threads_cluster):
    local = batch.run(FAKE, files, out=memory_url("local.parquet"), cache_dir=tmp_path / "c1", progress=False)
    assert local.out.startswith("memory://") and local.frames.endswith("/local.frames.npz")  # one file each
    url = memory_url("t.parquet")
    remote = batch.run(FAKE, files, out=url, scheduler=threads_cluster, cache_dir=tmp_path / "c2", part_size=2,
                       progress=False)
    names = listing(url)
    parts = [n for n in names if n.startswith("part-")]
    assert len(parts) == 3 and all(n.endswith(".parquet") for n in parts)
    stems = [n.removesuffix(".parquet") for n in parts]
    assert names == sorted([batch.DATASET_FILE, *parts, *(f"_frames/{s}.npz" for s in stems),
                            *(f"_done/{s}.json" for s in stems)])
    table = pd.read_parquet(url)
    pd.testing.assert_frame_equal(table, pd.read_parquet(local.out))
    assert table["size"].dtype == "int64" and table["v0"].dtype == "float32" and len(table) == 10
    assert list(table["track_id"].unique()) == ["clip0", "clip1", "clip2", "clip4", "clip5"]  # source order
    mine, theirs = batch.load_frames(url), batch.load_frames(local.out)
    for key in ("track_id", "segment", "label", "grid"):
        np.testing.assert_array_equal(mine[key], theirs[key])
    assert mine["meta"] == theirs["meta"] == {"what": "fake"}
    assert fileio.read_csv(remote.errors).equals(fileio.read_csv(local.errors))
    assert fileio.read_csv(remote.errors)["reason"].tolist() == ["unusable (t)"]
    assert (remote.n_tracks, remote.n_segments, remote.n_errors, remote.n_computed) == (5, 5, 1, 5)
    description = read_json(f"{url}/{batch.DATASET_FILE}")
    assert description["complete"] and description["parts"] == stems and description["task"] == "fake"


def test_a_catalogue_of_only_bad_files_is_an_empty_table_in_both_layouts(tmp_path, threads_cluster):
    manifest = pd.DataFrame({"path": ["a.wav", "b.wav"], "label": "x", "error": ["empty file (0 bytes)", "not audio"]})
    local = batch.run(FAKE, manifest, out=tmp_path / "t.parquet", cache_dir=tmp_path / "c", progress=False)
    parted = batch.run(FAKE, manifest, out=tmp_path / "p.parquet", scheduler=threads_cluster, cache_dir=tmp_path / "c",
                       progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(parted.out), pd.read_parquet(local.out))
    assert list(pd.read_parquet(parted.out).columns) == list(FAKE.columns) and parted.n_errors == 2
    assert batch.load_frames(parted.out)["grid"].shape == (0, 2, 4)


def test_run_part_returns_counts_and_errors_only(files, tmp_path):
    items, _ = batch.source_items(files)
    part = batch._plan_parts(FAKE, items, 50)[0]
    url = memory_url("t.parquet")
    stats = batch.run_part(part, task=FAKE, out=url, cache_root=tmp_path / "c")
    assert set(stats) == {"name", "n_files", "n_tracks", "n_segments", "n_cached", "n_computed", "errors"}
    assert len(json.dumps(stats)) < 400  # what travels back to the client: no rows, no frames
    assert (stats["n_files"], stats["n_tracks"], stats["n_computed"]) == (6, 5, 5)
    assert [Path(e["path"]).name for e in stats["errors"]] == ["clip3.wav"]
    assert len(list((tmp_path / "c" / "fake").rglob("*.npz"))) == 5  # the worker wrote the cache entries


def test_dask_rerun_redoes_only_the_missing_parts(files, tmp_path, threads_cluster):
    url = memory_url("t.parquet")
    kwargs = dict(out=url, scheduler=threads_cluster, part_size=2, progress=False)
    first = batch.run(FAKE, files, cache_dir=tmp_path / "c", **kwargs)
    table = pd.read_parquet(url)
    fs, root = batch._fs(url)
    markers = sorted(fs.glob(f"{root}/_done/part-*.json"))
    fs.rm(markers[1])  # part 1 (clip2, clip3) never finished
    CALLS.clear()
    again = batch.run(FAKE, files, cache_dir=tmp_path / "fresh-cache", **kwargs)  # an empty cache: work shows
    assert sorted(CALLS) == ["clip2.wav", "clip3.wav"]
    assert again.n_computed == 1 and again.n_cached == 4 and again.n_errors == first.n_errors == 1
    pd.testing.assert_frame_equal(pd.read_parquet(url), table)
    assert "clip3.wav" in fileio.read_csv(again.errors)["path"].iloc[0]  # errors of resumed parts kept


def test_a_changed_source_list_drops_stale_parts(files, tmp_path, threads_cluster):
    url = memory_url("t.parquet")
    kwargs = dict(out=url, scheduler=threads_cluster, cache_dir=tmp_path / "c", part_size=2, progress=False)
    batch.run(FAKE, files, **kwargs)
    before = set(listing(url))
    batch.run(FAKE, files.iloc[:3], **kwargs)  # clip0-2: part 0 is the same, part 1 now holds clip2 only
    after = set(listing(url))
    assert len(before - after) == 3 * 2 and len(after - before) == 3  # 2 parts x 3 files gone, 1 new part
    assert list(pd.read_parquet(url)["track_id"].unique()) == ["clip0", "clip1", "clip2"]
    assert [c["track_id"][0] for c in batch.iter_frames(url)] == ["clip0", "clip2"]


def test_outputs_are_never_mixed_or_written_over_foreign_files(files, tmp_path, threads_cluster):
    local = tmp_path / "local.parquet"
    batch.run(FAKE, files, out=local, cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(TracklensError, match="a file .*choose another --out"):
        batch.run(FAKE, files, out=local, scheduler=threads_cluster, cache_dir=tmp_path / "c", progress=False)
    parted = tmp_path / "parted.parquet"
    batch.run(FAKE, files, out=parted, scheduler=threads_cluster, cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(TracklensError, match="a folder .*choose another --out"):
        batch.run(FAKE, files, out=parted, cache_dir=tmp_path / "c", progress=False)
    foreign = tmp_path / "mine.parquet"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(TracklensError, match="holds no tracklens table"):
        batch.run(FAKE, files, out=foreign, scheduler=threads_cluster, cache_dir=tmp_path / "c", progress=False)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    other_task = dataclasses.replace(FAKE, name="other")
    with pytest.raises(TracklensError, match="holds a 'fake' table"):
        batch.run(other_task, files, out=parted, scheduler=threads_cluster, cache_dir=tmp_path / "c", progress=False)


def test_a_local_run_never_replaces_or_removes_a_file_it_did_not_write(files, tmp_path):
    """`features songs/ --out mine.parquet` replaced the user's own mine.parquet, and a run
    without frames (--segment 0) removed a mine.frames.npz beside it, without a word."""
    mine = tmp_path / "mine.parquet"
    pd.DataFrame({"my": [1, 2]}).to_parquet(mine)
    before = mine.read_bytes()
    with pytest.raises(TracklensError, match=r"mine\.parquet is already there and tracklens did not write it"):
        batch.run(FAKE, files, out=mine, cache_dir=tmp_path / "c", progress=False)
    assert mine.read_bytes() == before and CALLS == []  # refused before any file was analysed
    out = tmp_path / "t.parquet"
    (tmp_path / "t.frames.npz").write_bytes(b"my notes, not frames")
    no_frames = dataclasses.replace(FAKE, frames={})
    with pytest.raises(TracklensError, match=r"t\.frames\.npz is already there"):
        batch.run(no_frames, files, out=out, cache_dir=tmp_path / "c", progress=False)
    assert (tmp_path / "t.frames.npz").read_bytes() == b"my notes, not frames" and not out.exists()
    (tmp_path / "t.frames.npz").unlink()
    for task in (FAKE, FAKE, no_frames):  # a rerun replaces its own unit, and removes its own stale frames
        result = batch.run(task, files, out=out, cache_dir=tmp_path / "c", progress=False)
        assert result.n_tracks == 5
    assert not (tmp_path / "t.frames.npz").exists()


def exit_on_clip3(path: str, params: dict) -> batch.FileResult:
    """count_bytes, except that the process dies on clip3 (a segfaulting decoder, say)."""
    if Path(path).name == "clip3.wav":
        os._exit(1)
    return count_bytes(path, params)


def test_a_dead_dask_worker_is_one_line_and_finished_parts_stay(files, tmp_path):
    import dask
    from distributed import LocalCluster

    out = tmp_path / "t.parquet"
    kwargs = dict(out=out, cache_dir=tmp_path / "c", part_size=2, progress=False)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None) as cluster:
        with pytest.raises(TracklensError) as crash:
            batch.run(dataclasses.replace(FAKE, run_file=exit_on_clip3), files, scheduler=cluster.scheduler_address,
                      **kwargs)
        line = str(crash.value)
        # the worker held part 1, and part 2 too when Dask had handed it ahead: both are named
        assert "\n" not in line and re.match(r"a worker process crashed \(the Dask worker died\) on one of [24] files", line)
        assert "clip2.wav, " in line and "clip3.wav" in line
        assert line.endswith("2 of 6 files are done and cached; rerun the same command to resume")
        finished = sorted(out.glob("_done/*.json"))
        assert len(finished) == 1 and finished[0].stem.startswith("part-00000-")  # clip0, clip1: kept
        stamp = finished[0].stat().st_mtime_ns
        again = batch.run(FAKE, files, scheduler=cluster.scheduler_address, **kwargs)
    assert again.n_tracks == 5 and finished[0].stat().st_mtime_ns == stamp  # resumed: part 0 not redone
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(
        batch.run(FAKE, files, out=tmp_path / "local.parquet", cache_dir=tmp_path / "c", progress=False).out))


# --- sources -----------------------------------------------------------------------------------------


def test_a_folder_is_hashed_once_and_a_manifest_checksum_is_reused(tmp_path, monkeypatch):
    from tracklens.acquire.folder import folder_manifest

    folder = tmp_path / "audio" / "rock"
    folder.mkdir(parents=True)
    for i in range(3):
        sf.write(folder / f"rock.{i:05d}.wav", np.full(SR, 0.1 * (i + 1), np.float32), SR)
    hashed = []
    real = batch.file_checksum
    monkeypatch.setattr(batch, "file_checksum", lambda path: hashed.append(path) or real(path))
    result = batch.run(FAKE, tmp_path / "audio", out=tmp_path / "t.parquet", cache_dir=tmp_path / "c", progress=False)
    assert result.n_tracks == 3 and hashed == []  # folder_manifest's checksums were reused
    manifest = folder_manifest(tmp_path / "audio", progress=False)
    table = pd.read_parquet(result.out)
    assert table.groupby("track_id")["checksum"].first().tolist() == manifest["checksum"].tolist()
    no_checksums = manifest[["path", "label"]]
    batch.run(FAKE, no_checksums, out=tmp_path / "u.parquet", cache_dir=tmp_path / "c", progress=False)
    assert len(hashed) == 3


def test_manifest_cells_are_read_back_unescaped(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    (folder / "=SUM(1).wav").write_bytes(bytes(20))  # a name a spreadsheet would run as a formula
    manifest = folder / "manifest.csv"  # paths relative to it, as `acquire folder` writes them for a relative root
    fileio.write_csv(pd.DataFrame({"path": ["=SUM(1).wav"], "label": ["@pop"]}), manifest)
    assert manifest.read_text().splitlines()[1] == "'=SUM(1).wav,'@pop"
    result = batch.run(FAKE, manifest, out=tmp_path / "t.parquet", cache_dir=tmp_path / "c", progress=False)
    table = pd.read_parquet(result.out)
    assert result.n_errors == 0 and set(table["label"]) == {"@pop"} and set(table["track_id"]) == {"=SUM(1)"}


@pytest.mark.parametrize("sources, kind", [(None, "None"), (["a.wav", "b.wav"], "list")])
def test_sources_that_are_not_a_path_or_a_table_are_one_line(tmp_path, sources, kind):
    # in a notebook: features.extract_features(files, ...) was TypeError: expected str, bytes or os.PathLike object, not list
    with pytest.raises(TracklensError, match=f"sources: give a folder, a manifest CSV, one audio file or a DataFrame "
                                             f"with a 'path' column; got {kind}"):
        batch.run(FAKE, sources, out=tmp_path / "t.parquet", cache_dir=tmp_path / "c", progress=False)


def test_out_that_is_not_a_path_is_one_line(tmp_path):
    with pytest.raises(TracklensError, match="out=None: give the table's .parquet path"):
        batch.run(FAKE, tmp_path, out=None, cache_dir=tmp_path / "c", progress=False)


def test_a_file_name_that_is_not_utf8_is_its_error_row_and_the_batch_goes_on(tmp_path, run_cli):
    """`caf\\xe9.wav` (Latin-1, as unzipped from an old archive) stopped `features`,
    `catalogue build` and `acquire folder` over its folder with a pyarrow UnicodeEncodeError
    traceback: Python keeps the byte as a lone surrogate, which no table or UTF-8 file holds."""
    from tracklens.audio import NAME_NOT_UTF8

    folder = tmp_path / "audio"
    folder.mkdir()
    sf.write(folder / "fine.wav", np.full(SR, 0.1, np.float32), SR)
    sf.write(folder / "cafe.wav", np.full(SR, 0.2, np.float32), SR)
    (folder / "cafe.wav").rename(folder / os.fsdecode(b"caf\xe9.wav"))  # soundfile cannot name it
    result = batch.run(FAKE, folder, out=tmp_path / "t.parquet", cache_dir=tmp_path / "c", progress=False)
    assert result.n_tracks == 1 and result.n_errors == 1
    errors = fileio.read_csv(result.errors, keep_default_na=False)
    assert errors.to_dict("records") == [{"path": f"{folder}/caf\\xe9.wav", "reason": NAME_NOT_UTF8}]
    code, out, err = run_cli("acquire", "folder", folder, "--out", tmp_path / "m.csv")
    assert code in (0, None) and f"{folder}/caf\\xe9.wav: {NAME_NOT_UTF8}" in out, err
    code, out, err = run_cli("features", folder / os.fsdecode(b"caf\xe9.wav"), "--out", tmp_path / "one.parquet")
    assert code == 2 and err == f"tracklens: error: {folder}/caf\\xe9.wav: {NAME_NOT_UTF8}\n"


# --- reading frames back -------------------------------------------------------------------------------


def test_load_frames_filters_kinds_and_tracks_and_iterates_parts(files, tmp_path, threads_cluster):
    local = batch.run(FAKE, files, out=tmp_path / "t.parquet", cache_dir=tmp_path / "c", progress=False)
    parted = batch.run(FAKE, files, out=tmp_path / "p.parquet", scheduler=threads_cluster, cache_dir=tmp_path / "c",
                       part_size=2, progress=False)
    for out, n_chunks in ((local.out, 1), (parted.out, 3)):
        chunks = list(batch.iter_frames(out))
        assert len(chunks) == n_chunks and sum(len(c["track_id"]) for c in chunks) == 5
        some = batch.load_frames(out, tracks=["clip4", "clip1"], dtype=np.float16)
        assert list(some["track_id"]) == ["clip1", "clip4"] and some["grid"].dtype == np.float16
        np.testing.assert_array_equal(some["grid"][:, 0, 0], [15 % 11, 30 % 11])
        none = batch.load_frames(out, tracks=["nobody"])
        assert none["grid"].shape == (0, 2, 4)
    with pytest.raises(TracklensError, match="no frame kind 'log_mel'"):
        batch.load_frames(local.out, kinds=["log_mel"])
    fs, root = batch._fs(parted.out)
    fs.rm(sorted(fs.glob(f"{root}/_frames/*.npz"))[0])
    with pytest.raises(TracklensError, match="unfinished .*2 of 3 parts"):
        batch.load_frames(parted.out)


def test_url_outputs_are_atomic(tmp_path):
    url = memory_url("x/errors.csv")
    fileio.write_csv(pd.DataFrame({"path": ["=cmd"], "reason": ["r"]}), url)
    assert fileio.read_csv(url)["path"].tolist() == ["=cmd"]
    target = memory_url("y/t.parquet")
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    fs, path = batch._fs(target)
    assert not fs.exists(path) and not fs.exists(path.rsplit("/", 1)[0]) and not tmp.exists()
    assert batch.sibling("s3://bucket/run/f.parquet", ".errors.csv") == "s3://bucket/run/f.errors.csv"
    assert batch.sibling("file:///data/f.parquet", ".frames.npz") == Path("/data/f.frames.npz")


# --- real audio: a multi-process cluster, the trainers, the embedding models ------------------------------


def synth(seconds: float, *, seed: int, hz: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * hz * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.02 * rng.standard_normal(len(t))
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for i, genre in enumerate(("jazz", "rock", "jazz", "rock", "jazz")):
        (root / genre).mkdir(exist_ok=True)
        sf.write(root / genre / f"{genre}.{i:05d}.wav", synth(3.2 + 0.4 * i, seed=i, hz=220.0 * (1 + i)), SR)
    (root / "rock" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    return root


def record_compile_lock_holds(log_dir: str) -> None:
    """Run on each worker: log when this process holds numba_cache's compile lock."""
    import contextlib

    from tracklens import numba_cache

    real = numba_cache.compile_lock

    @contextlib.contextmanager
    def recording(*args, **kwargs):
        with real(*args, **kwargs):
            start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the host
            try:
                yield
            finally:
                Path(log_dir, f"{os.getpid()}.json").write_text(json.dumps([start, time.monotonic()]))

    numba_cache.compile_lock = recording


def numba_warmed() -> bool:
    from tracklens import numba_cache

    return numba_cache._warmed


@pytest.mark.slow  # ~20-40 s: two worker processes start, import librosa and warm numba one at a time
def test_separate_worker_processes_write_the_same_features(clips, tmp_path):
    """LocalCluster(processes=True): workers with their own imports, numba caches and writes."""
    from distributed import Client, LocalCluster

    local = features.extract_features(clips, out=tmp_path / "local.parquet", cache_dir=tmp_path / "c1", progress=False)
    holds = tmp_path / "holds"
    holds.mkdir()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        client.run(record_compile_lock_holds, str(holds))
        out = tmp_path / "dask.parquet"
        kwargs = dict(out=out, cache_dir=tmp_path / "c2", scheduler=client, part_size=2, progress=False)
        remote = batch.run(features.features_task(), clips, **kwargs)  # what extract_features runs, in 3 parts
        assert set(client.run(numba_warmed).values()) == {True}
        parts = sorted(out.glob("part-*.parquet"))
        stamps = [p.stat().st_mtime_ns for p in parts]
        again = batch.run(features.features_task(), clips, **kwargs)
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids and len(parts) == 3
    pd.testing.assert_frame_equal(pd.read_parquet(remote.out), pd.read_parquet(local.out))
    mine, theirs = features.load_frames(remote.out), features.load_frames(local.out)
    for key in ("track_id", "segment", *features.FRAME_KINDS):
        np.testing.assert_array_equal(mine[key], theirs[key])
    assert fileio.read_csv(remote.errors).equals(fileio.read_csv(local.errors))
    # each worker warmed numba under the host lock, one after the other
    spans = sorted(json.loads(p.read_text()) for p in holds.glob("*.json"))
    assert {int(p.stem) for p in holds.glob("*.json")} == worker_pids
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), spans
    # a rerun finds every part finished and rewrites none
    assert again.n_computed == 0 and again.n_cached == remote.n_tracks == 5
    assert [p.stat().st_mtime_ns for p in parts] == stamps


def test_trainers_read_the_partitioned_table(demo_catalogue, tmp_path, threads_cluster):
    from tracklens.models import train

    genres = sorted(p.name for p in (demo_catalogue / "audio").iterdir())[:3]
    clips = [str(p) for g in genres for p in sorted((demo_catalogue / "audio" / g).glob("*.wav"))[:4]]
    out = tmp_path / "features.parquet"
    features.extract_features(pd.DataFrame({"path": clips, "label": [Path(c).parent.name for c in clips]}), out=out,
                              cache_dir=tmp_path / "c", scheduler=threads_cluster, progress=False)
    assert out.is_dir()
    (result,) = train.train_models(out, ["logreg"], out_dir=tmp_path / "models", log=lambda s: None)
    assert result["name"] == "logreg" and (tmp_path / "models" / "logreg" / "card.json").is_file()
    frames = features.load_frames(out, kinds=["log_mel"])  # what the frame models' trainer reads
    assert set(frames["label"]) == set(genres) and frames["log_mel"].shape[1:] == (128, 130)


@pytest.mark.slow  # ~20-30 s: loads musicnn and EfficientAT
def test_embedding_tasks_plug_into_the_features_command(tmp_path, run_cli):
    from tracklens.audio import load_audio
    from tracklens.models import efficientat

    folder = tmp_path / "audio" / "jazz"
    folder.mkdir(parents=True)
    sf.write(folder / "jazz.00000.wav", synth(16.0, seed=1, hz=330.0), SR)  # two 10 s windows (one end-aligned)
    sf.write(folder / "jazz.00001.wav", synth(4.0, seed=2, hz=440.0), SR)  # one window of its own length
    out = tmp_path / "f.parquet"
    args = ("features", tmp_path / "audio", "--out", out, "--segment", "0", "--cache-dir", tmp_path / "c",
            "--embeddings", "musicnn, efficientat")
    code, stdout, err = run_cli(*args)
    assert code in (0, None), err
    assert "musicnn (MSD_musicnn) embeddings of 2 tracks" in stdout and "efficientat (mn04_as) embeddings of 2" in stdout
    table = pd.read_parquet(tmp_path / "f.mn04_as.parquet")
    assert list(table.columns[:7]) == ["track_id", "path", "label", "checksum", "segment", "start_s", "end_s"]
    assert table.filter(like="emb_").shape[1] == 384 and table.filter(like="logit_").shape[1] == 527
    assert table.groupby("track_id")["segment"].apply(list).to_dict() == {"jazz.00000": [-1, 0, 1],
                                                                         "jazz.00001": [-1, 0]}
    long = table[table["track_id"] == "jazz.00000"]
    np.testing.assert_allclose(long[["start_s", "end_s"]].to_numpy(), [[0, 16], [0, 10], [6, 16]], atol=1e-6)
    reference = efficientat.embed(clip=load_audio(folder / "jazz.00000.wav", sr=efficientat.SAMPLE_RATE))
    np.testing.assert_array_equal(long.filter(like="logit_").to_numpy()[1:], reference["logits"])
    np.testing.assert_array_equal(long.filter(like="emb_").to_numpy()[0], reference["mean"])
    assert (tmp_path / "f.MSD_musicnn.parquet").is_file()
    entries = len(list((tmp_path / "c").rglob("*.npz")))
    assert entries == 6  # one cache: 2 files x (features, MSD_musicnn, mn04_as)
    code, stdout, _ = run_cli(*args)
    assert code in (0, None) and len(list((tmp_path / "c").rglob("*.npz"))) == entries
    code, _, err = run_cli("features", tmp_path / "audio", "--out", tmp_path / "g.parquet", "--embeddings",
                           "musicnn,vggish")
    assert code == 2 and "'vggish'" in err and "musicnn, efficientat" in err
    assert not (tmp_path / "g.parquet").exists()  # refused before any work
