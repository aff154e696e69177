"""`python -m recnas` runs the command line."""

from recnas.experiment.cli import main

main()
