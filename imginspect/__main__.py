"""`python -m imginspect`: the same entry point as the console script."""

from imginspect.cli import main

if __name__ == "__main__":
    main()
