"""`python -m imgpipe_cli`, the same as the `imgpipe` command."""

from imgpipe_cli.main import main

main()
