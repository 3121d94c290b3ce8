"""The genre heads' training recipes and choice (recipes/heads.py), the fit score's open-set metrics
(models.fit) and the shipped default's card against its own artefacts.

Synthetic windows test the recipes and the choice; the shipped folders are compared with what
their cards store (never with a refit: a scikit-learn refit is not bit-stable across CPUs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracklens import config
from tracklens.models import blend, evaluate, fit, store

from recipe_modules import heads  # recipes/heads.py (not installed)

K = 4  # genres in the synthetic data


def _rows(n_clips: int, *, seed: int, windows: int = 3, spread: float = 1.0) -> heads.Rows:
    """Gaussian windows: class k centred at 2 * e_k in 8 dimensions, ``windows`` per clip."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_clips) % K, windows)
    centres = 2.0 * np.eye(8)[:K]
    x = (centres[y] + spread * rng.normal(size=(len(y), 8))).astype(np.float32)
    clip = np.repeat([f"s{seed}.{i}" for i in range(n_clips)], windows)
    return heads.Rows(x, y, clip, np.full(len(y), "train"), np.full(len(y), "clips"),
                      [f"c{i}" for i in range(8)], [f"g{i}" for i in range(K)])


# --- recipes ---------------------------------------------------------------------------------------


def test_mixup_rows_mix_two_genres_with_blended_targets(monkeypatch):
    rows = _rows(20, seed=0)
    seen = {}

    def capture(kind, x, y, strength, *, seed, sample_weight=None):
        seen.update(x=x, y=y, w=sample_weight)

    monkeypatch.setattr(heads, "fit_head", capture)
    heads.fit_rows(rows, np.ones(len(rows.y), bool), "linear", 0.1, heads.Recipe(mixup=2), seed=1)
    n = len(rows.y)
    x, y, w = seen["x"], seen["y"], seen["w"]
    m = (len(y) - n) // 2
    assert m > 0 and np.all(w[:n] == 1.0)
    first, second = slice(n, n + m), slice(n + m, None)
    # the same mixed rows twice, weighted lam and 1 - lam, labelled with two different genres
    np.testing.assert_array_equal(x[first], x[second])
    np.testing.assert_allclose(w[first] + w[second], 1.0, rtol=1e-6)
    assert np.all(y[first] != y[second]) and np.all((w[first] > 0) & (w[first] < 1))


def test_a_head_trained_with_mixup_learns_held_out_clips():
    """Train on one draw of clips, score another (held out): far above chance (0.25)."""
    train, test = _rows(40, seed=1, spread=1.5), _rows(40, seed=2, spread=1.5)
    head = heads.fit_rows(train, np.ones(len(train.y), bool), "linear", 0.1, heads.Recipe(mixup=2), seed=0)
    clips, probs = heads.track_probs(heads.window_logits(head, test.x, K), test.clip)
    truth = pd.Series(test.y, index=test.clip).groupby(level=0).first().loc[clips].to_numpy()
    assert np.mean(probs.argmax(axis=1) == truth) >= 0.8


def test_augmented_rows_join_only_their_own_clips_training(monkeypatch):
    rows = _rows(8, seed=0)
    extra = _rows(8, seed=0)
    augmented = heads.AugmentedRows(extra, np.repeat([0, 1], len(extra.y) // 2))
    seen = {}
    monkeypatch.setattr(heads, "fit_head", lambda kind, x, y, s, *, seed, sample_weight=None: seen.update(x=x))
    mask = np.isin(rows.clip, rows.clip[:6])  # two clips
    heads.fit_rows(rows, mask, "linear", 0.1, heads.Recipe(audio_copies=1), augmented=augmented, seed=0)
    own = np.isin(extra.clip, rows.clip[:6]) & (augmented.copy == 0)
    assert len(seen["x"]) == mask.sum() + own.sum()


def test_augmented_audio_stays_close_to_the_original():
    sr = 32_000
    t = np.arange(sr * 2) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    a, b = (heads.augment_audio(y, sr, np.random.default_rng(5)) for _ in range(2))
    np.testing.assert_array_equal(a, b)  # seeded
    assert abs(len(a) / len(y) - 1) <= 0.06 and np.abs(a).max() <= 1.0
    peak = np.fft.rfftfreq(len(a), 1 / sr)[np.abs(np.fft.rfft(a)).argmax()]
    assert 440 * 2 ** (-1 / 12) - 1 <= peak <= 440 * 2 ** (1 / 12) + 1  # at most a semitone away
    assert not np.array_equal(a, heads.augment_audio(y, sr, np.random.default_rng(0)))


# --- the choice: accuracy on whole clips, cost breaking ties -------------------------------------------


def _result(name: str, correct: int, n: int = 73) -> dict:
    y = np.zeros(n, int)
    probs = np.full((n, 10), 0.05)
    probs[:correct, 0] = 0.55
    probs[correct:, 1] = 0.55
    track = {"y": y, "probs": probs, "length": np.full(n, "clips")}
    return {"name": name, "genres": list(config.GTZAN_GENRES), "valid": track}


def test_a_cheaper_candidate_within_one_se_ships():
    # fusion_late 0.890 (SE 0.037) vs efficientat_linear 0.863: tied, and EfficientAT costs a fifth
    results = [_result("fusion_late", 65), _result("efficientat_linear", 63), _result("musicnn_linear", 50)]
    best, why = heads.best_candidate(results)
    assert best["name"] == "efficientat_linear" and "tied" in why and "fusion_late" in why


def test_a_clearly_better_expensive_candidate_ships():
    results = [_result("fusion_late", 70), _result("efficientat_linear", 60)]
    assert heads.best_candidate(results)[0]["name"] == "fusion_late"
    assert heads.best_candidate(results, fast_only=True)[0]["name"] == "efficientat_linear"
    # measured costs override the table: if fusion were the cheaper, it ships on a tie too
    tied = [_result("fusion_late", 64), _result("efficientat_linear", 63)]
    assert heads.best_candidate(tied, costs={"fusion_late": 0.3, "efficientat_linear": 0.4})[0]["name"] == "fusion_late"


# --- the fit score, measured as the open-set literature does --------------------------------------------


def _evidence(music, inside, wider):
    return fit.Evidence(music, inside, "Blues", [("Techno", wider)], ("Speech", 0.5))


def test_the_poor_fit_score_is_positive_exactly_when_a_rule_fires():
    rule = {"min_music": 0.3, "min_log_ratio": 1.0, "min_wider": 0.0}
    rows = [_evidence(0.9, 0.2, 0.01), _evidence(0.1, 0.2, 0.01), _evidence(0.9, 0.01, 0.5), _evidence(0.9, 0.1, 0.2)]
    score = fit.poor_fit_score(rows, rule)
    assert list(score >= 0) == [fit.decide(ev, rule).fit == "poor" for ev in rows] == [False, True, True, False]
    assert score[2] == pytest.approx(np.log((0.5 + fit.EPS) / (0.01 + fit.EPS)) - 1.0)


def test_ood_metrics_auroc_and_fpr_at_95_tpr():
    inside = np.arange(100) / 100.0  # 0.00 .. 0.99
    outside = np.r_[np.full(19, 2.0), 0.5]  # 19 of 20 (95 %) above every in-vocabulary score
    m = fit.ood_metrics(inside, outside)
    assert m["fpr_at_95_tpr"] == 0.0 and m["auroc"] == pytest.approx((19 * 100 + 50.5) / 2000)  # the tie at 0.5 counts half
    assert fit.ood_metrics(outside, inside)["auroc"] == pytest.approx(1 - m["auroc"])


def test_held_out_genres_count_as_wider_genres():
    names = ["Music", "Blues", "Jazz", *fit.WIDER_CLASSES,
             *{c for classes in fit.GENRE_CLASSES.values() for c in classes} - {"Blues", "Jazz"}]
    p = np.full(len(names), 0.01)
    p[names.index("Music")], p[names.index("Jazz")], p[names.index("Blues")] = 0.9, 0.6, 0.1
    known = [g for g in config.GTZAN_GENRES if g != "jazz"]
    assert fit.evidence(p, names).inside_class == "Jazz"
    ev = fit.evidence(p, names, known=known)
    assert ev.inside_class == "Blues" and ev.wider[0] == ("Jazz", pytest.approx(0.6))


# --- the shipped models: artefacts against their cards ------------------------------------------------------


def test_the_shipped_default_is_the_cheap_whole_clip_choice_its_card_describes():
    card = store.read_card(config.DEFAULT_MODEL_DIR)
    metrics = card["metrics"]
    assert metrics["cpu_s_per_30s_clip"] <= 0.5
    assert card["input"]["kind"] == "efficientat" and "musicnn" not in card["input"]
    clips = metrics["valid_by_kind"]["clips"]
    assert clips["n"] == 73 and "73 whole 30 s clips" in metrics["why_shipped"]
    # every candidate within one SE of the best valid-clip accuracy costs at least as much
    table = pd.DataFrame(metrics["comparison"])
    valid = table[(table["protocol"] == "valid") & (table["length"] == "clips")].set_index("model")
    top = valid["accuracy"].max()
    se = np.sqrt(top * (1 - top) / clips["n"])
    assert valid.loc[card["parameters"]["candidate"], "accuracy"] >= top - se - 1e-9
    assert clips["accuracy"] == pytest.approx(valid.loc[card["parameters"]["candidate"], "accuracy"], abs=1e-4)


def test_the_shipped_valid_predictions_give_the_cards_numbers():
    """valid_predictions.csv (the train-fold fit's calibrated valid predictions) reproduces each
    shipped card's valid-fold scores; the 30 s clips are the tracks whose id has no excerpt/snippet."""
    for folder in (config.DEFAULT_MODEL_DIR, config.DEFAULT_FAST_MODEL_DIR, config.MODELS_DIR / "fusion",
                   config.MODELS_DIR / "musicnn"):
        card = store.read_card(folder)
        saved = store.read_predictions(folder / store.PREDICTIONS_NAME, card["genres"])
        overall = evaluate.classification_metrics(saved["y_true"], saved["y_score"], class_names=card["genres"])
        stored = card["metrics"]["valid_track_level"]
        assert overall["n"] == stored["n"] == sum(s["n"] for s in card["metrics"]["valid_by_kind"].values())
        for key in ("accuracy", "balanced_accuracy", "ece"):
            assert overall[key] == pytest.approx(stored[key], abs=1e-4), (folder.name, key)


def test_fusion_and_musicnn_stay_available_by_name():
    for name, kind in (("fusion", "fusion"), ("musicnn", "musicnn")):
        assert blend.resolve_model_dir(name) == config.MODELS_DIR / name
        assert store.read_card(config.MODELS_DIR / name)["input"]["kind"] == kind


def test_a_recipe_ships_only_where_it_beats_its_plain_twin_by_more_than_an_se():
    # mixup +2 clips over efficientat_linear (SE ~0.05): not kept, whatever it costs
    plain, mixed = _result("efficientat_linear", 60), _result("efficientat_linear_mixup", 62)
    assert heads.best_candidate([plain, mixed])[0]["name"] == "efficientat_linear"
    assert heads.best_candidate([plain, _result("efficientat_linear_mixup", 66)])[0]["name"] == "efficientat_linear_mixup"
