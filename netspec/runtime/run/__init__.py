"""The run folder: its files, their write order, resuming and reading runs back."""
