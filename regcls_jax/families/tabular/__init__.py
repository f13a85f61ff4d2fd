"""Your own table: reg, reg+cls and the baselines, selected on validation (beyond the paper)."""
