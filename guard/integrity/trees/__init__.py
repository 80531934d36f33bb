"""The trees verification can look at: working tree, staged index, commit."""
