"""CLI commands that belong to a subsystem (train/eval, draw, attack); each module lists its COMMANDS."""
