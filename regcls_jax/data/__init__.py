"""Data sources: the 1D synthetic family (and, later, the real datasets)."""
