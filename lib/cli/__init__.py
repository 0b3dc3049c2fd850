"""The command line: ``python -m layercollapse evaluate | diagnose | prune | reproduce | render``."""
