"""librosa_visuals.py: images checked by their data, shapes and axis ranges; no second STFT.

Decoding clips and writing the audio figures is tested in test_reports.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tracklens import config
from tracklens import features
from tracklens import librosa_visuals as lv
from tracklens.errors import TracklensError

SR = config.SAMPLE_RATE
DURATION = 4.0
BPM = 120


@pytest.fixture(scope="module")
def analysis():
    """An A4 (440 Hz) tone with a click every beat at 120 BPM."""
    t = np.arange(int(SR * DURATION)) / SR
    y = 0.3 * np.sin(2 * np.pi * 440 * t)
    for beat in np.arange(0.25, DURATION, 60 / BPM):
        i = int(beat * SR)
        y[i:i + 200] += np.random.default_rng(int(beat * 100)).uniform(-0.6, 0.6, 200)
    return features.analyze(y.astype(np.float32), sr=SR)


@pytest.fixture
def no_new_stft(monkeypatch, analysis):
    """After the analysis exists, any further STFT fails the test."""
    import librosa
    import librosa.core.spectrum

    analysis.stft  # the one STFT already happened in analyze()

    def forbidden(*args, **kwargs):
        raise AssertionError("a second STFT was computed")

    monkeypatch.setattr(librosa, "stft", forbidden)
    monkeypatch.setattr(librosa.core.spectrum, "stft", forbidden)


def test_linear_spectrogram_image_shape_and_axes(analysis):
    fig = lv.plot_spectrogram(analysis, kind="linear", title="tone.wav")
    ax = fig.axes[0]
    mesh = ax.collections[0]
    assert mesh.get_array().shape == analysis.magnitude.shape == (1 + config.N_FFT // 2, analysis.n_frames)
    frame_s = config.HOP_LENGTH / SR
    x0, x1 = ax.get_xlim()
    assert x0 == pytest.approx(-frame_s / 2, abs=1e-6) and x1 == pytest.approx(DURATION + frame_s / 2, abs=2 * frame_s)
    assert ax.get_ylim()[1] == pytest.approx(SR / 2, rel=0.01)
    assert np.asarray(mesh.get_array()).max() == pytest.approx(0.0)  # dB relative to the peak
    assert "tone.wav" in ax.get_title() and "Hz" in ax.get_ylabel() and "time" in ax.get_xlabel()
    assert len(fig.axes) == 2  # image + colour bar


def test_mel_chroma_mfcc_images(analysis):
    mel = lv.plot_spectrogram(analysis, title="tone.wav").axes[0]
    np.testing.assert_allclose(mel.collections[0].get_array(), analysis.log_mel)
    assert mel.get_ylim()[1] == pytest.approx(SR / 2, rel=0.05)
    chroma = lv.analysis_image(analysis, "chroma")
    assert chroma.values.shape == (12, analysis.n_frames)
    assert lv.PITCH_CLASSES[int(chroma.values.mean(axis=1).argmax())] == "A"  # 440 Hz is an A
    mfcc = lv.plot_mfcc(analysis).axes[0].collections[0].get_array()
    assert mfcc.shape == (config.N_MFCC, analysis.n_frames)


@pytest.mark.slow  # > 10 s on 2 busy cores: renders every view
def test_every_view_reuses_the_one_stft(analysis, no_new_stft):
    figs = [
        lv.plot_waveform(analysis, title="tone.wav"), lv.plot_chromagram(analysis), lv.plot_spectral_shape(analysis),
        lv.plot_zcr_rms(analysis), lv.plot_beats(analysis), lv.plot_hpss(analysis), lv.overview(analysis, title="tone.wav"),
        lv.visualize_Chromagram_y_Spectrogram(analysis, title="tone.wav"),
        lv.genre_gallery({"a": analysis, "b": analysis}, titles={"a": "x.wav"}),
    ]
    assert all(f.axes for f in figs)
    both = figs[7]
    kinds = [ax.get_title() for ax in both.axes if ax.collections and ax.get_title()]  # colour bars have none
    assert any("chromagram" in k for k in kinds) and any("spectrogram" in k for k in kinds)
    assert all("tone.wav" in k for k in kinds)


def test_beats_and_overlays(analysis):
    tempo, beats = lv.beat_times(analysis)
    assert tempo == pytest.approx(BPM, rel=0.06)
    assert len(beats) >= DURATION * BPM / 60 - 3
    shape = lv.plot_spectral_shape(analysis).axes[0]
    centroid = shape.get_lines()[0].get_ydata()
    np.testing.assert_allclose(centroid, analysis.spectral_centroid[0])
    zcr_fig = lv.plot_zcr_rms(analysis)
    np.testing.assert_allclose(zcr_fig.axes[0].get_lines()[0].get_ydata(), analysis.rms[0])
    # the beat tracker's tempo is a third estimate beside Analysis.tempo and the engine's bpm: its title names it
    assert lv.plot_beats(analysis).axes[0].get_title() == f"librosa beat tracker: {tempo:.0f} BPM, {len(beats)} beats"


def test_plotly_versions_share_the_prepared_image(analysis):
    frame_s = 2 * config.HOP_LENGTH / SR  # a decimated image, as the dashboard sends
    fig = lv.spectrogram_figure(analysis.log_mel[:, ::2], frame_seconds=frame_s, title="up.mp3")
    heat = fig.data[0]
    assert np.asarray(heat.z).shape == analysis.log_mel[:, ::2].shape
    assert heat.x[-1] == pytest.approx((analysis.log_mel[:, ::2].shape[1] - 1) * frame_s)
    assert max(heat.y) == pytest.approx(SR / 2) and "up.mp3" in fig.layout.title.text
    chroma = lv.chromagram_figure(analysis.chroma)
    assert list(chroma.data[0].y) == list(lv.PITCH_CLASSES)
    img = lv.spec_image(analysis.chroma, kind="chroma")
    np.testing.assert_allclose(np.asarray(chroma.data[0].z, dtype=float), img.values)


def test_gallery_layout_and_png(analysis, tmp_path):
    import matplotlib.image

    from tracklens.reports import save_figure

    fig = lv.genre_gallery({"blues": analysis, "rock": analysis, "jazz": analysis}, views=("waveform", "mel"))
    image_axes = [ax for ax in fig.axes if ax.collections and ax.get_title()]
    assert len(image_axes) == 3 and {t.get_title().split(":")[0].split(" ")[0] for t in image_axes} == {"blues", "rock", "jazz"}
    path = save_figure(lv.visualize_Chromagram_y_Spectrogram(analysis, title="tone.wav"), tmp_path / "cys.png")
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 300 and pixels[..., :3].std() > 0.05


def test_misuse_errors(analysis):
    with pytest.raises(TracklensError, match="12 rows"):
        lv.chromagram_figure(np.zeros((13, 10)))
    with pytest.raises(TracklensError, match="kind"):
        lv.plot_spectrogram(analysis, kind="cqt")
    with pytest.raises(TracklensError, match="2-D"):
        lv.spectrogram_figure(np.zeros(10))
    with pytest.raises(TracklensError, match="view"):
        lv.genre_gallery({"a": analysis}, views=("waveform", "cqt"))


VIEWS = ("plot_waveform", "plot_spectrogram", "plot_chromagram", "plot_mfcc", "plot_spectral_shape", "plot_zcr_rms",
         "plot_beats", "plot_hpss", "overview", "visualize_Chromagram_y_Spectrogram", "analysis_image", "frame_times",
         "beat_times")


@pytest.mark.parametrize("name", VIEWS)
def test_a_view_given_a_file_name_or_a_clip_says_it_wants_an_analysis(analysis, name):
    # lv.overview("song.mp3") was AttributeError: 'str' object has no attribute 'y'; an AudioClip failed deeper in
    from tracklens.audio import AudioClip

    clip = AudioClip(y=analysis.y, sr=SR, path="song.wav", source_sr=SR, channels=1, source_duration_s=DURATION)
    view = getattr(lv, name)
    args = ("mel",) if name == "analysis_image" else ()
    for wrong, kind in (("song.mp3", "str"), (clip, "AudioClip"), (analysis.y, "ndarray")):
        with pytest.raises(TracklensError, match=rf"^librosa_visuals\.{name}: expected an analysis .*got {kind}$"):
            view(wrong, *args)
    with pytest.raises(TracklensError, match=r"genre_gallery\['rock'\]: expected an analysis .*got AudioClip"):
        lv.genre_gallery({"jazz": analysis, "rock": clip})
