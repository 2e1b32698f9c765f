"""Using trained checkpoints: one net (predict, evaluate) or an ensemble."""
