"""Multiple-choice tasks and their prompt formats."""
