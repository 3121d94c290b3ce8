"""The check page against a catalogue measured by tracklens (issue 18 items 4-7, page side):
neighbours by sound with play buttons served by catalogue name + track id only (the route refuses
anything else), where the track sits within its genre or all tracks, and the downloadable report.
The catalogue is built once from six real GTZAN clips (two genres) into a private tracklens home.
"""

from __future__ import annotations

import numpy as np
import pytest

from dashboard_helpers import _by_id, _text, _walk

CATALOGUE = "gtzan-mini"
GENRES = ("metal", "classical", "hiphop")


def build_mini_catalogue(shared_data, home):
    """A catalogue of 2 GTZAN clips of each of GENRES in ``home``/data/catalogues/gtzan-mini."""
    from tracklens import catalogue

    source = home / "clips"
    for genre in GENRES:
        (source / genre).mkdir(parents=True)
        for clip in sorted((shared_data / "gtzan" / "audio" / genre).glob("*.opus"))[:2]:
            (source / genre / clip.name).symlink_to(clip)
    return catalogue.build(source, catalogue.catalogues_dir(home) / CATALOGUE, progress=False,
                           cache_dir=home / "cache")


@pytest.fixture(scope="module")
def mini_home(shared_data, tmp_path_factory):
    home = tmp_path_factory.mktemp("catalogue-home")
    build_mini_catalogue(shared_data, home)
    return home


@pytest.fixture
def with_catalogues(mini_home, monkeypatch, app):
    from tracklens import config

    monkeypatch.setattr(config, "DATA_DIR", mini_home / "data")
    return mini_home


@pytest.fixture(scope="module")
def metal_report(app, shared_data):
    """A checked metal clip that is not in the catalogue (the third one)."""
    from tracklens.dashboard import track

    clip = sorted((shared_data / "gtzan" / "audio" / "metal").glob("*.opus"))[2]
    report = track.check_track(clip.read_bytes(), clip.name)
    return report, {"key": __import__("hashlib").sha256(clip.read_bytes()).hexdigest(), "name": clip.name}


def _get(app, **params):
    from urllib.parse import urlencode

    from tracklens.dashboard import catalogue_audio

    client = app.server.test_client()
    answer = client.get(f"/{catalogue_audio.ROUTE}?{urlencode(params)}")
    return answer.status_code, answer.data


def test_audio_route_serves_a_catalogue_track_by_name_and_id_only(with_catalogues, app):
    from tracklens import catalogue

    cat = catalogue.load(catalogue.catalogues_dir() / CATALOGUE)
    track_id = str(cat.tracks["track_id"].iloc[0])
    status, body = _get(app, catalogue=CATALOGUE, track=track_id)
    assert status == 200 and body == cat.audio_path(track_id).read_bytes()
    path = str(cat.audio_path(track_id))
    refused = [
        ({"catalogue": CATALOGUE}, 400),  # no track
        ({"catalogue": CATALOGUE, "track": track_id, "path": path}, 400),  # anything else
        ({"catalogue": CATALOGUE, "track": path}, 400),  # a path as the track
        ({"catalogue": CATALOGUE, "track": "../../etc/passwd"}, 400),
        ({"catalogue": "../" + CATALOGUE, "track": track_id}, 400),
        ({"catalogue": str(catalogue.catalogues_dir() / CATALOGUE), "track": track_id}, 400),
        ({"catalogue": "no-such-catalogue", "track": track_id}, 404),
        ({"catalogue": CATALOGUE, "track": "metal.99999"}, 404),
    ]
    for params, expected in refused:
        assert _get(app, **params)[0] == expected, params


def test_the_page_offers_the_top_hits_and_every_catalogue(with_catalogues, app, pages):
    with app.server.test_request_context("/"):
        layout = pages["check"].layout()
    picker = _by_id(layout, "check-catalogue")
    assert [o["value"] for o in picker.options] == [pages["check"].TOP_HITS, CATALOGUE]
    assert picker.value == pages["check"].TOP_HITS and _by_id(layout, "check-scope").value == "genre"


def test_catalogue_neighbours_by_sound_within_the_genre_or_all_tracks(with_catalogues, app, pages, metal_report):
    from tracklens.dashboard import catalogue_audio

    report, key = metal_report
    options = [o["value"] for o in pages["check"].catalogue_options()]
    assert options == [pages["check"].TOP_HITS, CATALOGUE]
    genre = report.genre_blend.top_genre
    within = pages["check"].show_comparison(CATALOGUE, "genre", key)
    everyone = pages["check"].show_comparison(CATALOGUE, "all", key)
    table = _by_id(everyone, "check-neighbours")
    rows = table.children[2].children
    assert len(rows) == 5 and "metal" in _text(rows[0].children[1])  # the nearest of 6 is a metal clip
    audio = [c for r in rows for c in _walk(r) if type(c).__name__ == "Audio"]
    assert len(audio) == 5 and all(a.src.startswith(f"/{catalogue_audio.ROUTE}?catalogue={CATALOGUE}&track=")
                                   for a in audio)
    sits = _text(_by_id(everyone, "check-where"))
    assert "the 6 tracks of gtzan-mini" in sits and "hit score" in sits
    genre_rows = _by_id(within, "check-neighbours").children[2].children
    assert all(genre in _text(r.children[1]) for r in genre_rows), genre
    assert f"the 2 {genre} tracks of gtzan-mini are too few" in _text(_by_id(within, "check-where-few"))


def test_download_is_the_tracklens_check_report_with_the_neighbours(with_catalogues, app, pages, metal_report):
    report, key = metal_report
    download = pages["check"].download_check(1, key, CATALOGUE, "all")
    page = download["content"]
    assert download["filename"].endswith(".tracklens-check.html") and page.startswith("<!doctype html>")
    assert f"tracklens check: {key['name']}" in page and "Nearest by sound in gtzan-mini" in page
    assert f"<b>{report.genre_blend.label}</b>" in page
    from html import escape

    from tracklens import catalogue

    assert escape(catalogue.LDA_RULE) in page  # the caption names the rule that ranked them (labelled catalogue)


def test_the_page_compares_blends_only_with_a_catalogue_of_its_own_genre_model(with_catalogues, pages, metal_report):
    """A catalogue built with the page's genre model (the default) is ranked as `tracklens check`
    ranks it (sound and blend); one of other weights by sound alone, and each note says which
    (gtzan-mini's tracks carry genre labels, so the LDA of its labels takes part, as in `similar`)."""
    import dataclasses

    from tracklens import catalogue

    report, _ = metal_report
    check = pages["check"]
    cat = catalogue.load(catalogue.catalogues_dir() / CATALOGUE)
    shown = check.page_neighbours(report, cat, within=None)
    assert shown.attrs[catalogue.WITH_BLEND_ATTR]
    as_check = catalogue.similar(check.report_track(report), cat, top=len(shown))
    assert list(shown["track_id"]) == list(as_check["track_id"])
    assert shown["similarity"].to_numpy() == pytest.approx(as_check["similarity"].to_numpy(), abs=1e-6)
    note = _text(_by_id(check.catalogue_section(report, cat, all_tracks=True), "check-catalogue-note"))
    assert as_check.attrs[catalogue.RULE_ATTR] in note and catalogue.LDA_RULE in note and catalogue.BLEND_RULE in note

    other = dataclasses.replace(cat, card={**cat.card, "model": {**cat.card["model"], "sha256": "0" * 64}})
    alone = check.page_neighbours(report, other, within=None)  # same model name, other weights
    assert not alone.attrs[catalogue.WITH_BLEND_ATTR]
    by_sound = catalogue.similar(np.asarray(report.genre_blend.embedding, np.float32), other, top=len(alone))
    assert alone["similarity"].to_numpy() == pytest.approx(by_sound["similarity"].to_numpy(), abs=1e-6)
    assert not np.allclose(alone["similarity"], shown["similarity"], atol=1e-3)  # the blend half moved the scores
    note = _text(_by_id(check.catalogue_section(report, other, all_tracks=True), "check-catalogue-note"))
    assert by_sound.attrs[catalogue.RULE_ATTR] in note and "(by sound alone)" in note and catalogue.BLEND_RULE not in note


def test_the_genre_model_is_compared_once_per_render(with_catalogues, pages, metal_report, monkeypatch):
    """Whether the page's blend takes part checksums the genre model's weights
    (Catalogue.built_with): the catalogue section asked twice per render, once for the neighbours
    and once more for its note; the note now reads what the neighbours' ranking decided."""
    from tracklens import catalogue

    report, _ = metal_report
    cat = catalogue.load(catalogue.catalogues_dir() / CATALOGUE)
    asked, built_with = [], catalogue.Catalogue.built_with
    monkeypatch.setattr(catalogue.Catalogue, "built_with",
                        lambda self, model_dir: asked.append(model_dir) or built_with(self, model_dir))
    section = pages["check"].catalogue_section(report, cat, all_tracks=False)
    assert len(asked) == 1, asked
    assert "(the catalogue was built with the page's genre model)" in _text(_by_id(section, "check-catalogue-note"))
