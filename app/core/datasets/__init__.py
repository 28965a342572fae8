"""Datasets: the built-in catalog, uploads converted once into arrays, and reading them back."""
