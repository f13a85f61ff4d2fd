"""The 1D study (paper Sec. 3.1, Fig. 3, Tab. 1): ``plan`` (which models, in which chunks),
``program`` (one compiled program per chunk), ``trainer`` (the checkpointed chunk loop, eval
mode) and ``report`` (results.csv, summary.md, fig3.png, methods.md)."""
