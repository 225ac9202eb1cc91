"""Entry point for ``spark-submit`` (which runs a file, not a module):

    spark-submit --master yarn [options] docker/submit.py run --config run.yaml

The cluster's ``--master`` is kept (``pipelines._session.submitted``). Do not submit ``pipelines/cli.py``
itself: its folder would go first on ``sys.path`` and ``pipelines/stages/tokenize.py`` would shadow the standard
library's ``tokenize``."""

import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main())
