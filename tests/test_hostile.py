"""Every bad input of issue 12 through ``tools/hostile.py``: one line, exit 2, no traceback,
no file outside the run store, nothing executed (see that script for what each case checks)."""
import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "hostile", Path(__file__).resolve().parent.parent / "tools" / "hostile.py")
hostile = sys.modules["hostile"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile)


@pytest.mark.parametrize("case", hostile.CLI_CASES, ids=lambda c: c.name)
def test_cli_refuses_with_one_line(tmp_path, case):
    hostile.check_cli(case, hostile.make_sandbox(tmp_path))


@pytest.mark.parametrize("name, action, expect", hostile.store_cases(), ids=lambda c: c if isinstance(c, str) else "")
def test_run_store_refuses_with_one_line(tmp_path, name, action, expect):
    hostile.check_store(name, action, expect, hostile.make_sandbox(tmp_path))
