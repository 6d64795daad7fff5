"""``python -m advlib.course run|report ...``: see :mod:`advlib.course`."""
import sys

from . import main

sys.exit(main())
