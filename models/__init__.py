"""Genre models: Keras builders, classical baselines, training, evaluation and the genre blend.

Importing this package is cheap: TensorFlow/Keras load only inside the functions that need them
(`builders`, `train`, `store.load_model`), so `tracklens --help` stays instant.

Modules
- ``builders``: one short ``build_x(input_shape, n_classes, *, ...) -> keras.Model`` per architecture.
- ``baselines``: scikit-learn ``Pipeline`` factories (logistic regression, k-NN, RF, SVM, GB).
- ``datasets``: feature tables (GTZAN CSV or ``features.parquet``), split files, grouped splits.
- ``evaluate``: pure metric functions, temperature scaling, figures and the comparison report.
- ``train``: one training function per model family, writing model + card to a directory.
- ``store``: model cards (data, split, features, metrics, versions, SHA-256) and safe loading.
- ``blend``: :class:`~models.blend.GenreModel` and :func:`~models.blend.predict_blend`.
"""
