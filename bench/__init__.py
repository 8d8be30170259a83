"""Side-by-side measurements of the release tooling against the naive way (`python -m bench`, bench/README.md)."""
