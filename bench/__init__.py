"""`make bench`: measure the real imgpipe system against the codec's limit (see README.md)."""
