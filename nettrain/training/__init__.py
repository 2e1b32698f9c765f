"""One fit: ``fit.fit`` is the way in (the CLI's, the Python API's and the tests'); it prepares a
run, checks the run folder and runs the loop; besides them the training state (``state``), the
monitors, the history, the run folder, resume, Ctrl-C and the MPI world."""
