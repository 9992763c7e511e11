"""``python -m waflens.pipeline.spark`` (and ``spark-submit .../waflens/pipeline/spark/__main__.py``): the
``waflens spark`` commands without the rest of the CLI; see :mod:`waflens.pipeline.spark.cli`."""

import sys

from waflens.pipeline.spark.cli import main

if __name__ == "__main__":
    sys.exit(main())
