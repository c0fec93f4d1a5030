"""`python -m netspec` (also what `torchrun -m netspec train ...` runs)."""
from netspec.cli import main

main(prog_name="netspec")
