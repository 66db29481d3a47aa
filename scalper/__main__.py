"""Entry point for ``python -m scalper``."""

from scalper.cli import main

if __name__ == "__main__":
    main()
