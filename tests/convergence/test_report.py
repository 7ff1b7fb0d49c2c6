"""docs/convergence.md is current: it lists exactly the cells of today's matrix, and none failed."""

from __future__ import annotations

from tests.convergence.report import COLUMNS, DOC, row_key
from tests.convergence.test_matrix import cells


def test_the_table_lists_every_cell_of_the_current_matrix_and_none_failed():
    text = DOC.read_text()
    rows = {line.split(" `", 1)[0] + " `" + line.split("`")[1] + "` |": line for line in text.splitlines()
            if line.startswith("| ") and "`" in line}
    wanted = {}
    for command, call, fault in cells():
        wanted.setdefault(row_key(command, call), set()).add(fault)
    assert set(rows) == set(wanted), "docs/convergence.md is stale: run `make convergence`"
    for key, faults in wanted.items():
        values = [v.strip() for v in rows[key].split("|")[3:-1]]
        by_column = dict(zip(COLUMNS, values))
        for fault in faults:
            assert by_column[fault].startswith(("yes, ", "not run")), f"{key} {fault}: {by_column[fault]}"
        for column in set(COLUMNS) - faults:
            assert by_column[column] == "-", f"{key} {column}: {by_column[column]}"
