"""The words Jenkins ends a build with, as the sandbox's two Jenkinses know them.

Why a module of its own: the Jenkins emulator (``bot.sandbox.jenkins``) and the fast tier's
in-memory CI (``bot.sandbox.memory``) both let a test script a build's result, and must accept the
same words; neither may import the other (each stands alone), so the words live once, here, below
both. What each word means for a deployment is the Jenkins adapter's to say
(``bot.adapters.jenkins_json.RESULTS``); the in-memory CI follows its rule.
"""

from __future__ import annotations

from typing import Final

SUCCESS: Final = "SUCCESS"
ABORTED: Final = "ABORTED"
RESULTS: Final = frozenset({SUCCESS, "UNSTABLE", "FAILURE", ABORTED, "NOT_BUILT"})
"""Every result word a scripted build may end with (Jenkins' ``Result``)."""


def check_result(result: str) -> None:
    """Refuse a word Jenkins never ends a build with (a test's typo must not pass as a failure)."""
    if result not in RESULTS:
        raise ValueError(f"result must be one of {sorted(RESULTS)}, not {result!r}")
