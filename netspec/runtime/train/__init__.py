"""Training: the loop, its recipe, devices and ranks, evaluation."""
