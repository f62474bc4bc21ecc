import sys

from kgen.cli import main

if __name__ == "__main__":  # not when a worker process imports it (kgen.codegen.render)
    sys.exit(main())
