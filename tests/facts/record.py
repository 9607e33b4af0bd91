"""Record a fact case from a real rehearsal host: runs the fact's command over ssh and writes
tests/facts/<module>.<Fact>/<case>.json with the arguments, raw output and parsed value.

    python tests/facts/record.py HOST limits.UnitLimits CASE '{"units": ["lbstack-app.slice"]}'

Review the recorded value before committing it: the test then holds the parser to it.
"""

import importlib
import json
import sys
from pathlib import Path

from lbstack.rehearsal import get_host, ssh_run


def main(host_name: str, fact_path: str, case: str, args_json: str = "{}") -> None:
    module_name, fact_name = fact_path.split(".")
    fact = getattr(importlib.import_module(f"facts.{module_name}"), fact_name)()
    args = json.loads(args_json)
    rc, out, err = ssh_run(get_host(host_name), str(fact.command(**args)))
    if rc != 0:
        raise SystemExit(f"command failed ({rc}): {err}")
    lines = out.splitlines()
    target = Path(__file__).parent / fact_path / f"{case}.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps({"arg": args, "output": lines, "fact": fact.process(lines)}, indent=2) + "\n")
    print(target)


if __name__ == "__main__":
    main(*sys.argv[1:])
