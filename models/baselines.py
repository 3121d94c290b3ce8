"""Classical baselines on the 57 summary features: ``Pipeline(StandardScaler(), classifier)`` factories.

Each factory takes ``random_state`` (where the estimator is random) and returns an unfitted
pipeline with ``fit`` / ``predict_proba``. They share the split and the report with the Keras
models (:mod:`models.registry` gives each its model name). Baselines are scored in the run that
trains them; they are not saved as predictors (a fitted scikit-learn object can only be stored
by pickling, which we never load).
"""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


def logistic_regression(*, C: float = 0.5, random_state: int | None = None) -> Pipeline:
    """Multinomial logistic regression (L2, ``C`` = inverse penalty)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=random_state))


def knn(*, n_neighbors: int = 9, random_state: int | None = None) -> Pipeline:
    """k nearest neighbours, distance-weighted (``random_state`` unused, kept for a uniform call)."""
    return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=n_neighbors, weights="distance"))


def random_forest(*, n_estimators: int = 300, random_state: int | None = None) -> Pipeline:
    """Random forest (the earlier projects' best classical model, 65 % on a leaky split)."""
    return make_pipeline(StandardScaler(), RandomForestClassifier(
        n_estimators=n_estimators, min_samples_leaf=2, n_jobs=1, random_state=random_state))


def svm_rbf(*, C: float = 4.0, random_state: int | None = None) -> Pipeline:
    """SVM with an RBF kernel; probabilities by Platt scaling on internal 5-fold CV."""
    svc = SVC(C=C, kernel="rbf", gamma="scale", random_state=random_state)
    return make_pipeline(StandardScaler(), CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False))


def gradient_boosting(*, max_iter: int = 100, random_state: int | None = None) -> Pipeline:
    """Histogram gradient boosting (early-stops on an internal split; 10 trees per round for 10 genres)."""
    return make_pipeline(StandardScaler(), HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=0.1, max_leaf_nodes=15, max_bins=64, l2_regularization=1.0,
        early_stopping=True, random_state=random_state))
