"""Reading option scores out of a network: batching, the scoring hot path, logit and tuned lens."""
