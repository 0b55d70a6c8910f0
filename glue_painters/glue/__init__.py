"""Old home of the GLUE track, kept so that existing imports and commands keep working.

The track now lives in the top-level package ``glue_eval`` (beside ``decoder_eval``); the modules
here are aliases of its modules and hold no code of their own.
"""
