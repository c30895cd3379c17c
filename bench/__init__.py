"""Benchmarks of the event backbone: `make bench` (quick) or `make bench BENCH_MODE=full`.

Each benchmark measures a baseline in the same run, so its ratio holds on a noisy machine.
Run `python -m bench --help` for the options.
"""
