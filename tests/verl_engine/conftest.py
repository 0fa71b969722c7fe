"""verl's tests run in their own virtualenv (`make test-verl`): verl pins transformers below the hf extra.

Where verl is not installed (the default suite) nothing in this folder is collected.
"""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("verl") else ["test_*.py"]
