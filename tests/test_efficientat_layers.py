"""EfficientAT's intermediate blocks (``embed_layers``, ``layer_statistics``): documented shapes,
the same logits and embedding as ``embed``, and pooled statistics that match the full feature maps."""

from __future__ import annotations

import numpy as np
import pytest

from tracklens.models import efficientat

#: (bands, channels) of each tap at mn04_as's 128 mel bands (module comment of LAYER_TAPS)
TAP_SHAPES = {"block03": (32, 16), "block06": (16, 16), "block10": (8, 32), "block12": (8, 48),
              "block12_expanded": (8, 272), "block15": (4, 64), "final_conv": (4, 384)}


@pytest.fixture(scope="module")
def embedder():
    return efficientat.get_embedder()


@pytest.fixture(scope="module")
def signal():
    """25 s of a decaying two-tone signal with noise at 32 kHz: 3 windows (10, 10, end-aligned 10)."""
    rng = np.random.default_rng(7)
    t = np.arange(25 * efficientat.SAMPLE_RATE) / efficientat.SAMPLE_RATE
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-(t % 0.5) * 6) + 0.1 * np.sin(2 * np.pi * 1760 * t)
    return (y + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def both(embedder, signal):
    return embedder.embed(signal, sr=efficientat.SAMPLE_RATE), embedder.embed_layers(signal, sr=efficientat.SAMPLE_RATE)


def test_layers_have_the_documented_shapes(both):
    _, layered = both
    n = len(layered["starts_s"])
    assert n == 3 and set(layered["layers"]) == set(efficientat.LAYER_TAPS) == set(TAP_SHAPES)
    for tap, (bands, channels) in TAP_SHAPES.items():
        stats = layered["layers"][tap]
        assert stats["mean"].shape == stats["std"].shape == (n, bands, channels), tap
        assert stats["mean"].dtype == np.float32 and (stats["std"] >= 0).all()
    pooled = efficientat.layer_statistics(layered["layers"])
    assert pooled.shape == (n, 2 * sum(c for _, c in TAP_SHAPES.values()))
    assert efficientat.layer_statistics(layered["layers"], ("block06", "block15")).shape == (n, 2 * (16 + 64))


def test_embed_layers_gives_embeds_outputs_unchanged(both):
    plain, layered = both
    for key in ("logits", "taggram", "embedding", "mean", "tags", "starts_s"):
        np.testing.assert_allclose(layered[key], plain[key], rtol=0, atol=1e-6, err_msg=key)


def test_final_conv_averaged_over_bands_is_the_embedding(both):
    # the embedding is the final conv's average over frequency and time: the taps are the right layers
    _, layered = both
    final = layered["layers"]["final_conv"]["mean"].mean(axis=1)
    np.testing.assert_allclose(final, layered["embedding"], rtol=0, atol=1e-5)
    # and the final conv's channel means are layer_statistics' first half for that tap
    np.testing.assert_allclose(efficientat.layer_statistics(layered["layers"], ("final_conv",))[:, :384],
                               layered["embedding"], rtol=0, atol=1e-5)


def test_layer_statistics_match_the_full_feature_maps(embedder, signal):
    """Per-band time statistics combined over bands = mean and std over frequency x time of the map."""
    import keras

    _, windows = efficientat.cut_windows(signal)
    specs = np.stack([efficientat.log_mel(w) for w in windows])
    taps = ("block10", "block15")
    probe = keras.Model(embedder.model.inputs, [embedder.model.get_layer(efficientat.LAYER_TAPS[t]).output for t in taps])
    maps = [np.asarray(m, np.float64) for m in probe(specs, training=False)]  # (n, bands, frames, channels)
    expected = np.concatenate([part for m in maps for part in (m.mean(axis=(1, 2)), m.std(axis=(1, 2)))], axis=1)
    got = efficientat.layer_statistics(embedder.embed_layers(signal, sr=efficientat.SAMPLE_RATE)["layers"], taps)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_embed_layers_refuses_bad_input(embedder):
    with pytest.raises(efficientat.EfficientATError, match="needs a clip"):
        embedder.embed_layers()
    with pytest.raises(efficientat.EfficientATError, match="mono"):
        embedder.embed_layers(np.zeros((2, 32_000), np.float32), sr=32_000)
