"""Load generator and benchmarks of the game service (not part of the service)."""
