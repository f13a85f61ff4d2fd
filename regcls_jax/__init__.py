"""regcls-jax: regression with an auxiliary classification loss over binned targets.

A JAX/Flax reimplementation of Pintea et al., ICCV 2023, "A step towards understanding why
classification helps regression". See README.md for the commands and docs/architecture.md
for the layout.
"""

__version__ = "0.1.0"
