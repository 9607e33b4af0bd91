"""Facts about staged configuration files: a file is rendered to a staging copy, validated there,
and only then promoted over the live file."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase


class StagedDiffers(FactBase):
    """
    Live files that are not an exact copy of their staged file, with the given mode.

    ``pairs`` is a list of ``[staged, live, mode]``. Returns the list of ``live`` paths that differ
    in content or mode, or are missing (``[]``: everything promoted). A missing staged file counts
    as a difference too (the promotion then fails, naming it).
    """

    @staticmethod
    def default():
        return []

    def command(self, pairs) -> str:
        checks = []
        for staged, live, mode in pairs:
            s, l, m = shlex.quote(staged), shlex.quote(live), shlex.quote(str(mode).lstrip("0") or "0")
            checks.append(f'{{ cmp -s {s} {l} && [ "$(stat -c %a {l})" = {m} ]; }} || echo {l}')
        return "; ".join(checks) + "; true"

    def process(self, output) -> list[str]:
        return [line.strip() for line in output if line.strip()]
