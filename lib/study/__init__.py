"""The study: profiles, the experiments of a profile and their plan, checking stored results by recomputing them, and running the plan as distributed jobs."""
