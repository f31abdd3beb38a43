"""`python -m imginspect`: the same entry point as the console script."""

import sys

try:
    from imginspect.cli import main
except KeyboardInterrupt:  # Ctrl-C while still importing: no traceback either
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)

if __name__ == "__main__":
    main()
