"""The `imgpipe` command line."""
