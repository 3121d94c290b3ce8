import pytest

from tracklens import fileio


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with fileio.atomic_output(target) as handle:
            handle.write("half")
            raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left behind

    with fileio.atomic_output(target) as handle:
        handle.write("new")
    assert target.read_text(encoding="utf-8") == "new"
    assert target.stat().st_mode & 0o777 == 0o644


def test_atomic_path_keeps_suffix_and_cleans_up(tmp_path):
    target = tmp_path / "sub" / "frames.npz"
    with pytest.raises(ValueError):
        with fileio.atomic_path(target, suffix=".npz") as tmp:
            assert tmp.suffix == ".npz" and tmp.parent == target.parent
            tmp.write_bytes(b"partial")
            raise ValueError("interrupted")
    assert not target.exists() and list(target.parent.iterdir()) == []
    fileio.atomic_write_bytes(target, b"done")
    assert target.read_bytes() == b"done"
