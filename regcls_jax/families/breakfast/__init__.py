"""Breakfast video progress (paper Sec. 3.3, Tab. 5): ``frames`` (every frame's features, read
once), ``plan`` (one model per split, activity and seed; program inputs), ``program`` (a
method's models in one compiled program), ``report`` (results.csv, table5.md) and ``trainer``."""
