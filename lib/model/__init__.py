"""The models: loading (short names, Hub ids, folders, embedded GGUF), the one place that knows architectures, layer views and layer hooks."""
