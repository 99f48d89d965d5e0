"""`python -m sandgate` is the `sandgate` command."""

from sandgate.cli import main

main()
