"""tracklens: explore music catalogues and find the genre blend of any track.

The repository root is this package, so the user's files keep their places and are imported as
``from tracklens import prepare, explore`` or ``from tracklens.models import blend``. Importing the
package is cheap: each module loads its heavy dependencies (TensorFlow, librosa) when used.
"""

__version__ = "0.1.0"
