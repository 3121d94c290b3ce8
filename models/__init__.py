"""Genre models: Keras builders, classical baselines, training, evaluation and the genre blend.

Importing this package is cheap: TensorFlow/Keras load only inside the functions that need them
(`builders`, `train`, `store.load_model`), so `tracklens --help` stays instant.

Modules
- ``registry``: every model name -> (Keras builder or baseline, input kind); the one list of names.
- ``kinds``: every input kind, one object each (source, rate, window, card record, how a block
  becomes model input, weight checks); callers look a kind up instead of testing its name.
- ``builders``: one short ``build_x(input_shape, n_classes, *, ...) -> keras.Model`` per architecture.
- ``baselines``: scikit-learn ``Pipeline`` factories (logistic regression, k-NN, RF, SVM, GB).
- ``datasets``: feature tables (GTZAN CSV or ``features.parquet``), split files, grouped splits and
  each input kind's training rows (``musicnn_models`` adds the embedding kinds).
- ``evaluate``: pure metric functions (one ECE, ``ECE_BINS`` bins), temperature scaling, the comparison table.
- ``train``: the one training path for every model, and the one place model cards are built.
- ``store``: model cards (data, split, features, metrics, versions, SHA-256), safe loading,
  validation predictions (the report itself is written by ``tracklens.reports``).
- ``blend``: :class:`~models.blend.GenreModel` and :func:`~models.blend.predict_blend` (the genre
  blend of any model kind, with its fit verdict, chart-genre tags and timeline).
- ``fit`` / ``chart_genres`` / ``oov``: does a track fit the ten genres (AudioSet evidence, a tuned
  rule), its chart genres from AudioSet classes, and the seeded out-of-vocabulary audio that tests it.
- ``musicnn`` / ``efficientat``: the pretrained embedders (Keras ports, SHA-checked shipped
  weights); ``musicnn_models`` / ``efficientat_models`` their windows and input kinds.
- How the shipped models were built is not installed: ``recipes/heads.py`` (genre heads on those
  embeddings compared on the shared GTZAN audio: ``models/default``, ``default-fast``),
  ``recipes/table_model.py`` (the 57-feature ``default-table``), ``recipes/descriptors.py``.
- ``descriptors``: Spotify-style acousticness/energy estimated from audio, with held-out error.
- ``popularity``: the in-memory popularity model the explore figures and notebooks fit.
"""

from tracklens.models import quiet_tensorflow

# Before any module here imports Keras: TensorFlow's start-up lines (oneDNN, absl) stay off the
# terminal and the notebook, whichever module imports it first (models/quiet_tensorflow.py).
quiet_tensorflow.install()
