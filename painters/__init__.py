"""The application above both tracks: the ``painters`` command, reports, results export, the
search commands and W&B report publishing.

Layers (``tests/test_layers.py`` checks them): ``glue_painters`` is the library (plans, rewiring,
engine pieces, the store, statistics) and imports neither track nor this package; the tracks
``decoder_eval`` and ``glue_eval`` build on it and import neither each other's code nor this
package; this package imports all three.
"""
