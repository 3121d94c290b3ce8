"""How much of a track's popularity do its audio features predict? A cross-validated answer.

:func:`popularity_model` fits ridge/logistic and gradient-boosting models on a cleaned chart
table (see :func:`prepare.prepare_charts`), scores them by grouped cross-validation against a
trivial baseline and measures permutation importances: a :class:`PopularityReport`. Everything
happens in memory; ``explore`` draws the report, ``reports`` writes it.

The chart-table helpers (:data:`AUDIO_FEATURES`, :func:`numeric_frame`, :func:`pick_features`)
live here, at the model's level, so the views above can share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.errors import TracklensError

#: Numeric audio descriptors of the Top Hits table, in the table's column order.
AUDIO_FEATURES = ("duration_ms", "explicit", *config.SPOTIFY_AUDIO_FEATURES)
TARGET = "popularity"


def check_chart_table(df) -> None:
    """One line when ``df`` is not a table (a CSV's path is the usual slip in a notebook)."""
    if not isinstance(df, pd.DataFrame):
        kind = "None" if df is None else type(df).__name__
        raise TracklensError(f"expected a chart table (a pandas DataFrame), got {kind}; "
                             "read a chart CSV with prepare.prepare_charts(path)")


def _require_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    """One line naming the columns ``df`` lacks, each with its nearest real name (a typo)."""
    import difflib

    missing = [c for c in columns if c not in df.columns]
    if missing:
        known = [str(c) for c in df.columns]
        hints = [f"{m!r} for {c!r}" for c in missing if (m := next(iter(difflib.get_close_matches(str(c), known, n=1)), None))]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise TracklensError(f"chart table lacks column(s) {missing}{hint}; has {known}")


def numeric_frame(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The named columns as float, complete cases only; a clear error for missing columns."""
    check_chart_table(df)
    _require_columns(df, columns)
    out = df.loc[:, list(columns)].astype(float).dropna()
    if len(out) < 3:
        raise TracklensError(f"need at least 3 complete rows for statistics, got {len(out)}")
    return out


def pick_features(df: pd.DataFrame, features: Sequence[str] | None, default: Sequence[str]) -> list[str]:
    """Requested features, or the defaults this table actually has."""
    check_chart_table(df)
    if features is not None:
        features = [features] if isinstance(features, str) else list(features)  # "tempo" is one feature
        _require_columns(df, features)
        return features
    present = [f for f in default if f in df.columns]
    if not present:
        raise TracklensError(f"chart table has none of the audio features {list(default)}")
    return present


@dataclass
class PopularityReport:
    """Cross-validated popularity scores.

    scores : DataFrame (task, model, metric, mean, std) — regression R² and hit AUC per model,
        baselines included
    importances : DataFrame indexed by feature: mean, std of the drop in R² when the feature is
        permuted on held-out folds (best regression model), sorted descending
    """

    scores: pd.DataFrame
    importances: pd.DataFrame
    n: int
    n_splits: int
    hit_threshold: float
    best_model: str
    verdict: str
    features: list = field(default_factory=list)

    def score(self, task: str, model: str) -> tuple[float, float]:
        row = self.scores[(self.scores.task == task) & (self.scores.model == model)].iloc[0]
        return float(row["mean"]), float(row["std"])


def popularity_model(
    df: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    target: str = TARGET,
    hit_quantile: float = 0.75,
    n_splits: int = 5,
    n_repeats: int = 5,
    group: str | None = "artist",
    seed: int = config.DEFAULT_SEED,
) -> PopularityReport:
    """How much of popularity do the audio features predict? Cross-validated, against a baseline.

    Regression of ``target`` (R²; baseline: predict the training mean, R² ≈ 0) and a "hit"
    classification (``target`` in the top ``1 - hit_quantile``; AUC, baseline 0.5) with a ridge
    / logistic model and gradient boosting. Folds are grouped by ``group`` (artist) so an
    artist's fame cannot leak from training to test folds. Permutation importances are measured
    on the held-out folds of the best regression model.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import GroupKFold, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    feats = [f for f in pick_features(df, features, AUDIO_FEATURES) if f != target]
    data = numeric_frame(df, feats + [target])
    if len(data) < 5 * n_splits:
        raise TracklensError(f"need at least {5 * n_splits} tracks for {n_splits}-fold CV, got {len(data)}")
    X, y = data[feats].to_numpy(), data[target].to_numpy()
    threshold = float(np.quantile(y, hit_quantile))
    hit = (y >= threshold).astype(int)
    if group and group in df.columns and df.loc[data.index, group].nunique() >= n_splits:
        groups = df.loc[data.index, group].astype(str).to_numpy()
        folds = list(GroupKFold(n_splits, shuffle=True, random_state=seed).split(X, y, groups))
    else:
        folds = list(KFold(n_splits, shuffle=True, random_state=seed).split(X))

    regressors = {
        "baseline (mean)": lambda: DummyRegressor(strategy="mean"),
        "ridge": lambda: make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12))),
        "gradient boosting": lambda: HistGradientBoostingRegressor(
            max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20, random_state=seed),
    }
    classifiers = {
        "baseline (prior)": lambda: DummyClassifier(strategy="prior"),
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "gradient boosting": lambda: HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20, random_state=seed),
    }
    with threadpool_limits(1):  # 2k rows: OpenMP start-up costs more than it saves on shared cores
        return _popularity_cv(X, y, hit, folds, regressors, classifiers, feats, threshold, n_repeats, seed)


def _popularity_cv(X, y, hit, folds, regressors, classifiers, feats, threshold, n_repeats, seed) -> PopularityReport:
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import r2_score, roc_auc_score

    rows, fitted = [], {}
    for name, make in regressors.items():
        per_fold = []
        for k, (tr, te) in enumerate(folds):
            est = make().fit(X[tr], y[tr])
            per_fold.append(r2_score(y[te], est.predict(X[te])))
            fitted[(name, k)] = est
        rows.append({"task": "popularity (R²)", "model": name, "metric": "r2", "mean": np.mean(per_fold), "std": np.std(per_fold)})
    for name, make in classifiers.items():
        per_fold = []
        for tr, te in folds:
            if len(np.unique(hit[te])) < 2:
                continue
            est = make().fit(X[tr], hit[tr])
            per_fold.append(roc_auc_score(hit[te], est.predict_proba(X[te])[:, 1]))
        rows.append({"task": "hit (AUC)", "model": name, "metric": "auc", "mean": np.mean(per_fold), "std": np.std(per_fold)})
    scores = pd.DataFrame(rows)

    reg = scores[scores.metric == "r2"].set_index("model")["mean"]
    best = str(reg.drop("baseline (mean)").idxmax())
    drops = []
    for k, (_, te) in enumerate(folds):
        res = permutation_importance(fitted[(best, k)], X[te], y[te], scoring="r2", n_repeats=n_repeats,
                                     random_state=seed)
        drops.append(res.importances)  # (n_features, n_repeats)
    drops = np.concatenate(drops, axis=1)
    importances = pd.DataFrame({"mean": drops.mean(axis=1), "std": drops.std(axis=1)}, index=pd.Index(feats, name="feature"))
    importances = importances.sort_values("mean", ascending=False)

    r2, r2_sd = float(reg[best]), float(scores.set_index(["metric", "model"]).loc[("r2", best), "std"])
    auc_row = scores[(scores.metric == "auc") & (scores.model != "baseline (prior)")].sort_values("mean").iloc[-1]
    baseline_r2 = float(reg["baseline (mean)"])
    if r2 < 0.1:
        verdict = (f"Audio features explain little of popularity: best CV R² = {r2:.3f} ± {r2_sd:.3f} ({best}) "
                   f"vs {baseline_r2:.3f} for the mean; hit AUC {auc_row['mean']:.3f} ± {auc_row['std']:.3f} vs 0.5.")
    else:
        verdict = (f"Audio features explain part of popularity: best CV R² = {r2:.3f} ± {r2_sd:.3f} ({best}) "
                   f"vs {baseline_r2:.3f} for the mean; hit AUC {auc_row['mean']:.3f} ± {auc_row['std']:.3f} vs 0.5.")
    return PopularityReport(scores, importances, len(y), len(folds), threshold, best, verdict, list(feats))
