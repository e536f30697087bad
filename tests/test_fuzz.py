"""The upload path under fuzzing (``benchmarks/fuzz.py``): every seed and every input a fuzzing run found
failing ends in an image or the module's own error, in time and within the memory budget; and a short,
seeded atheris run finds nothing new."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from benchmarks.fuzz import REGRESSIONS, SEEDS, FuzzFailure, check_one, corpus_files, make_seeds, warm_up

ROOT = Path(__file__).resolve().parent.parent
# What each input a fuzzing run found failing (tests/fixtures/fuzz/regressions) did, and now ends in.
REGRESSION_OUTCOMES = {
    # pydicom raised NotImplementedError (unknown VR "NONE") while the elements were listed
    "dicom_delimiter_with_unknown_vr.dcm": "refused",
    # pydicom 3.0's get_j2k_parameters looped forever on a JP2 box of length 0 (libFuzzer timeout)
    "dicom_jp2_box_of_length_zero.dcm": "refused",
    # Pillow raised IndexError / struct.error reading a truncated GIF's second frame for is_animated
    "gif_truncated_before_second_frame.gif": "refused",
    "gif_truncated_frame_descriptor.gif": "refused",
    # zlib.error escaped the zip extraction (only BadZipFile and EOFError were caught)
    "zip_invalid_deflate_stream.zip": "zip refused",
    # zipfile.ZipFile raised NotImplementedError ("zip file version 11.5") on opening the archive
    "zip_unsupported_version.zip": "zip refused",
    # ZipInfo.is_dir() raised IndexError for an entry with an empty name, before the name was checked
    "zip_entry_with_empty_name.zip": "zip refused",
}


@pytest.fixture
def traced():
    """Allocations traced (the memory check runs) and a hang turned into a failure after a minute."""

    def hung(signum, frame):
        raise TimeoutError("the input still runs after 60 s")

    warm_up()  # imports are not what is measured
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    tracemalloc.start()
    yield
    tracemalloc.stop()
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def passes(data: bytes) -> str:
    """The input's outcome under the fuzzer's checks, time aside (tests assert no speed)."""
    return check_one(data, deadline_s=None)


def test_every_regression_input_is_listed():
    assert sorted(p.name for p in REGRESSIONS.glob("*")) == sorted(REGRESSION_OUTCOMES)


@pytest.mark.parametrize("name", sorted(REGRESSION_OUTCOMES))
def test_inputs_that_once_failed(name, traced):
    assert passes((REGRESSIONS / name).read_bytes()) == REGRESSION_OUTCOMES[name]


def test_our_seeds_pass_and_reach_their_decoders(traced):
    outcomes = {path.name: passes(path.read_bytes()) for path in sorted(SEEDS.glob("*"))}
    refused = {name for name, outcome in outcomes.items() if outcome == "zip refused"}
    assert refused == {"traversal.zip", "symlink.zip"}  # the hostile zips; every other seed is decoded
    assert {outcome for name, outcome in outcomes.items() if name not in refused} == {"image", "zip"}


@pytest.mark.slow
def test_every_seed_passes(traced):
    """pydicom's own test files too: real CT, MR, ultrasound, RT, SR, compressed and broken files."""
    outcomes = {path.name: passes(path.read_bytes()) for path in corpus_files()}
    assert outcomes["CT_small.dcm"] == outcomes["MR_small.dcm"] == outcomes["image_dfl.dcm"] == "image"
    assert outcomes["rtplan.dcm"] == outcomes["JPEG2000-embedded-sequence-delimiter.dcm"] == "refused"


@pytest.mark.slow
def test_the_committed_seeds_are_the_generated_ones():
    assert sorted(p.name for p in SEEDS.glob("*")) == sorted(make_seeds())  # regenerate with --write-seeds


def test_the_checks_catch_what_they_must(traced, monkeypatch):
    """The harness itself: another exception, a slow input or a large allocation is a failure."""
    import benchmarks.fuzz as fuzz

    png = (SEEDS / "grey.png").read_bytes()

    def explode(data):
        raise KeyError("boom")

    monkeypatch.setattr(fuzz, "_image_path", explode)
    with pytest.raises(FuzzFailure, match="(?s)^exception: .*KeyError: 'boom'"):
        check_one(png)
    monkeypatch.setattr(fuzz, "_image_path", lambda data: bytearray(fuzz.memory_budget(len(data)) + 1))
    with pytest.raises(FuzzFailure, match="^memory: "):
        check_one(png)
    monkeypatch.setattr(fuzz, "_image_path", lambda data: "image")
    with pytest.raises(FuzzFailure, match="^hang: "):
        check_one(png, deadline_s=-1.0)  # any time is over a negative deadline


@pytest.mark.slow
def test_a_short_seeded_fuzzing_run_finds_nothing(tmp_path):
    pytest.importorskip("atheris")
    command = [sys.executable, "benchmarks/fuzz.py", "--runs", "600", "--seed", "1", "--json"]
    result = subprocess.run(
        [*command, "--crashes", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    report = json.loads(result.stdout)
    failures = {p.name: p.read_text()[-400:] for p in tmp_path.glob("*.txt")}
    assert report["crashes"] == 0, failures
    assert report["executions"] == 600 and report["seeds"] == len(corpus_files())
    assert report["outcomes"].get("image", 0) > 0 and report["outcomes"].get("refused", 0) > 0
