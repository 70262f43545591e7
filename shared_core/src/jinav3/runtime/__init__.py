"""The machine and the options: what the CPU/GPU can do, threads, backend settings, optional extras."""
