"""Data sets: download, parse, batch. One module per data set."""
