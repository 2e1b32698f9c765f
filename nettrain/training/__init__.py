"""One fit: prepare a run, the loop, monitors, history, the run folder, resume, Ctrl-C and the MPI
world."""
