"""Fact parsers from recorded outputs, pyinfra-style: tests/facts/<module>.<Fact>/<case>.json
holds the fact's arguments, the raw output lines recorded from a real host, and the expected value.
"""

import importlib
import json
from pathlib import Path

import pytest
from pyinfra.api import FactBase

HERE = Path(__file__).parent
CASES = sorted(HERE.glob("*.*/*.json"))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_fact_parses_recorded_output(case):
    module_name, fact_name = case.parent.name.split(".")
    fact_cls = getattr(importlib.import_module(f"facts.{module_name}"), fact_name)
    data = json.loads(case.read_text())
    fact = fact_cls()
    # the command renders for the recorded arguments (what was run to record the output)
    assert fact.command(**data.get("arg", {}))
    assert fact.process(data["output"]) == data["fact"]


def test_there_are_cases_for_every_lbstack_fact():
    """Every fact class in facts/ has at least one recorded case."""

    named = {c.parent.name for c in CASES}
    facts_dir = HERE.parents[1] / "facts"
    expected = set()
    for path in sorted(facts_dir.glob("*.py")):
        if path.stem == "__init__":
            continue
        module = importlib.import_module(f"facts.{path.stem}")
        for name, value in vars(module).items():
            if (isinstance(value, type) and issubclass(value, FactBase) and value.__module__ == module.__name__
                    and not name.startswith("_")):  # a private base class is not a fact of its own
                expected.add(f"{path.stem}.{name}")
    assert expected - named == set(), f"facts without a recorded case: {sorted(expected - named)}"
