"""Genre models: Keras builders, classical baselines, training, evaluation and the genre blend.

Importing this package is cheap: TensorFlow/Keras load only inside the functions that need them
(`builders`, `train`, `store.load_model`), so `tracklens --help` stays instant.

Modules
- ``registry``: every model name -> (Keras builder or baseline, input kind); the one list of names.
- ``builders``: one short ``build_x(input_shape, n_classes, *, ...) -> keras.Model`` per architecture.
- ``baselines``: scikit-learn ``Pipeline`` factories (logistic regression, k-NN, RF, SVM, GB).
- ``datasets``: feature tables (GTZAN CSV or ``features.parquet``), split files, grouped splits and
  each input kind's training rows (``musicnn_models`` adds the embedding kinds).
- ``evaluate``: pure metric functions (one ECE, ``ECE_BINS`` bins), temperature scaling, the comparison table.
- ``train``: the one training path for every model, and the one place model cards are built.
- ``store``: model cards (data, split, features, metrics, versions, SHA-256), safe loading,
  validation predictions (the report itself is written by ``tracklens.reports``).
- ``blend``: :class:`~models.blend.GenreModel` and :func:`~models.blend.predict_blend`.
"""
