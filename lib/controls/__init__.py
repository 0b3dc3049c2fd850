"""The referee's controls and the paper's section 4.3 experiments: noise, representation similarity, fine-tuning."""
