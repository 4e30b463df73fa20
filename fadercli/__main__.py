"""`python -m fadercli` (and `torchrun -m fadercli`)."""

from fadercli.cli import main

# Guarded: spawned worker processes re-import the main module under another name.
if __name__ == "__main__":
    main()
