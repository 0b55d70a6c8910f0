"""glue-painters: run pretrained transformers with their layers rewired."""

__version__ = "0.1.0"
