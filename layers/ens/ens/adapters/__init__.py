"""One adapter per outside system, each behind a small interface defined where it is used."""
