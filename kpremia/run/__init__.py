"""One run's life: fit, checkpoints, resume, test/validate, backtests, compare, sweeps."""
