"""The method and its baselines as pure functions.

``binning`` (uniform and equalised classes, paper Eq. 12-13), ``losses`` (Eq. 3-4),
``baselines`` (LDS, Focal-R, Balanced MSE, histogram losses), ``fds`` (feature distribution
smoothing), ``registry`` (every method by name: priors, objective, prediction) and ``metrics``
(the evaluation protocols of the DIR benchmarks).
"""
