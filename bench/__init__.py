"""Tarifa's benchmarks: `make bench` (or `python -m bench [name ...]`). See README.md."""
