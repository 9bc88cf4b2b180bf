"""Demonstration files (robomimic-style HDF5) and action normalisation statistics."""
