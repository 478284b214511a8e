"""The offline HTML report of a run: reading a run folder and writing the page and its data."""
