"""A small CNN classifier for tissue tiles: the QA feature net and the benchmark's classifier."""
