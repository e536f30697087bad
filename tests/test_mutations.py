"""benchmarks/mutations.py's records still describe today's source: each old text is found exactly once,
each mutant still compiles (a syntax error would be a mutation any test "kills"), and each names test
files that exist. No mutation is run here (that is the script's job)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from benchmarks.mutations import (
    MUTATIONS,
    ROOT,
    Mutation,
    Result,
    applies,
    main,
    mutated_source,
    run_mutation,
    summary,
)

ISSUE_28 = {  # the five breaks of issue 28, which the fast suite must kill
    "answer-first-chain",
    "temperature-ignored",
    "resume-forgets-optimizer-and-ema",
    "mmd-dropped",
    "gradcam-class-0",
}


@pytest.mark.parametrize("m", MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_applies_once_and_compiles(m: Mutation):
    assert applies(m) == "ok", f"{m.name}: the old text is in {m.file} {applies(m)} — update the record"
    assert m.old != m.new and m.description
    ast.parse(mutated_source(m), filename=m.file)
    assert any((ROOT / t).is_file() for t in m.tests), f"{m.name}: none of {m.tests} exists"


def test_the_set_covers_the_issue_and_the_core_modules():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))
    assert ISSUE_28 <= set(names) and len(set(names) - ISSUE_28) >= 25
    modules = {Path(m.file).stem for m in MUTATIONS}
    core = {"pipeline", "diffusion", "lean", "losses", "uncertainty", "ood", "rois", "explain", "train"}
    assert core <= modules, core - modules


def test_a_stale_record_is_reported_not_skipped(tmp_path, capsys):
    (tmp_path / "diffmic").mkdir()
    (tmp_path / "diffmic" / "x.py").write_text("a = 1\nb = 1\n")
    stale = Mutation("gone", "diffmic/x.py", "c = 1", "c = 2", "", ("tests/test_x.py",))
    twice = Mutation("twice", "diffmic/x.py", " = 1", " = 2", "", ("tests/test_x.py",))
    assert (applies(stale, tmp_path), applies(twice, tmp_path)) == ("stale", "ambiguous")
    results = [run_mutation(m, tmp_path, timeout=1) for m in (stale, twice)]  # nothing runs
    assert [r.status for r in results] == ["stale", "ambiguous"]
    assert summary(results)["stale"] == ["gone", "twice"] and summary(results)["applied"] == 0
    with pytest.raises(SystemExit):
        main(["--only", "no-such-mutation"])
    assert "unknown mutation" in capsys.readouterr().err


def test_the_kill_rate_counts_applied_mutations_and_timeouts_as_killed():
    def result(name: str, status: str) -> Result:
        return Result(name, "f", "", [], status, 0.0, "", [])

    report = summary(
        [result("a", "killed"), result("b", "timeout"), result("c", "survived"), result("d", "stale")]
    )
    assert report["applied"] == 3 and report["killed"] == 2 and report["kill_rate"] == round(2 / 3, 4)
    assert report["survived"] == ["c"] and report["stale"] == ["d"]
