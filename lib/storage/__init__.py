"""The storage tier: the results store (specs, keys, atomic Parquet + JSON, checkpoints) and the compute versions and audit record that key and describe every result."""
