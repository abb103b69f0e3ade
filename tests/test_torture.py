"""The torture test: random SIGKILLs never duplicate or lose a side effect."""

from __future__ import annotations

from pathlib import Path

from tests.torture import torture


def test_thirty_random_kills_lose_nothing_and_repeat_nothing(tmp_path: Path) -> None:
    report = torture(tmp_path, kills=30, seed=2026)
    print(
        f"torture: {report.kills} kills over {report.scenarios} runs ({report.processes} processes), "
        f"{report.ambiguous} ambiguous jobs ({report.ambiguous_not_run} never ran), "
        f"{report.duplicates} duplicates"
    )
    assert report.kills >= 30
    assert report.problems == []
    assert report.duplicates == 0
