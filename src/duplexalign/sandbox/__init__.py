"""The embedded sandbox: scenarios, simulated users, a flawed tiny Moshi and the demo loop.

Importing the package registers the sandbox's oracle judge ("oracle") in `judges.base.JUDGES`.
"""

from duplexalign.sandbox import oracle as _oracle  # noqa: F401  (registers the "oracle" judge)
