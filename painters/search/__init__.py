"""``painters search``: layer scores and plan search (``glue_painters.search``), and the benchmark
verdict of the plans found (the decoder track)."""
