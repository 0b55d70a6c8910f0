"""Alias of ``glue_eval.cli`` (the GLUE track moved to the top-level package ``glue_eval``)."""

import sys

import glue_eval.cli

sys.modules[__name__] = glue_eval.cli
