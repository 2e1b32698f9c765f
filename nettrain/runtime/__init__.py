"""The process nettrain runs in: threads, vector width, memory kept between batches, Numba
compilation, the launcher (mpirun) and what a run ran on."""
