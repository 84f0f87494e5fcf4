"""The command line: one-line errors that name the fix, non-zero exit codes, the zoo commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from uapfp.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("uapfp: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_missing_dataset(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("UAPFP_OFFLINE", "1")
    monkeypatch.delenv("UAPFP_DATA", raising=False)
    monkeypatch.setattr("uapfp.data.fashion_mnist.DEBIAN_FASHION_MNIST", tmp_path / "none")
    code, _, err = _run(
        capsys,
        "-q",
        "zoo",
        "build",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        str(tmp_path / "x"),
        "--out",
        str(tmp_path / "zoo"),
    )
    line = _one_line_error(err)
    assert code != 0 and "apt-get install dataset-fashion-mnist" in line and "--data-dir" in line
    assert not (tmp_path / "zoo").exists()  # refused before anything was written: no folder left behind


def test_missing_image_folder(capsys, tmp_path):
    code, _, err = _run(
        capsys, "-q", "zoo", "build", "--dataset", f"imagefolder:{tmp_path / 'nope'}", "--out", str(tmp_path / "zoo")
    )
    assert code != 0 and "train/ and test/" in _one_line_error(err) and not (tmp_path / "zoo").exists()


def test_unknown_architecture(capsys, tmp_path):
    code, _, err = _run(
        capsys, "-q", "zoo", "build", "--preset", "tiny", "--archs", "A,Q", "--out", str(tmp_path / "zoo")
    )
    line = _one_line_error(err)
    assert code != 0 and "unknown architecture 'Q'" in line and "package.module:factory" in line


def test_unknown_augmentation(capsys, tmp_path):
    code, _, err = _run(capsys, "-q", "zoo", "build", "--preset", "tiny", "--augment", "crop:4,flip", "--out",
                        str(tmp_path / "zoo"))  # fmt: skip
    line = _one_line_error(err)
    assert code != 0 and "crop:P and flip joined by +" in line


def test_unwritable_output(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = _run(capsys, "-q", "zoo", "build", "--preset", "tiny", "--out", str(blocker / "zoo"))
    line = _one_line_error(err)
    assert code != 0 and "cannot write to" in line and "--out" in line


def test_console_entry_point_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "uapfp", "zoo", "list", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "no zoo.json" in proc.stderr and "Traceback" not in proc.stderr


def test_zoo_build_and_list(capsys, tmp_path):
    code, out, _ = _run(capsys, "-q", "zoo", "build", "--preset", "tiny", "--archs", "C", "--piracy", "1", "--homologous", "1",
                        "--attacks", "copycat", "--epochs", "1", "--no-victim-arch", "--augment", "crop:2+flip",
                        "--out", str(tmp_path / "zoo"))  # fmt: skip
    assert code == 0 and "piracy-C-adam-00" in out
    from uapfp.zoo import Zoo

    zoo = Zoo.load(tmp_path / "zoo")
    assert {c["train"]["augment"] for c in [zoo.victim, *zoo.select()]} == {"crop:2+flip"}
    code, out, _ = _run(capsys, "zoo", "list", str(tmp_path / "zoo"))
    assert code == 0 and out.splitlines()[0].split()[:3] == ["id", "role", "arch"] and "victim" in out


@pytest.mark.parametrize(
    "argv", [["verify", "--kit", "nowhere", "--suspect", "x.json"], ["evaluate", "--kit", "nowhere", "--zoo", "z"]]
)
def test_missing_kit(capsys, argv):
    code, _, err = _run(capsys, *argv)
    assert code != 0 and "uapfp protect" in _one_line_error(err)


def test_command_line_choices_match_the_library():
    """The parser lists choices from the torch-free config (so that ``--help`` needs no torch); they
    must be the library's."""
    import argparse

    from uapfp.bench.cifar10 import PRESETS as CIFAR10_PRESETS
    from uapfp.cli import build_parser
    from uapfp.config import CALIBRATION_CHOICES
    from uapfp.uap import NORMS, UAP_METHODS
    from uapfp.zoo import PRESETS

    expected = {"calibration": CALIBRATION_CHOICES, "uap_method": tuple(UAP_METHODS), "norm": NORMS,
                "preset": tuple(PRESETS)}  # fmt: skip
    seen: dict[str, int] = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif (name := action.dest.rsplit("__", 1)[-1]) in expected:
                want = tuple(CIFAR10_PRESETS) if parser.prog.endswith("bench cifar10") else tuple(expected[name])
                assert tuple(action.choices) == want, (parser.prog, action.option_strings)
                seen[name] = seen.get(name, 0) + 1

    walk(build_parser())
    # protect and bench detection each list the calibrations and the UAP methods; bench the norms.
    assert seen["calibration"] >= 2 and seen["uap_method"] >= 2 and seen["norm"] >= 1 and seen["preset"] >= 1


@pytest.mark.parametrize("argv", [["--help"], ["verify", "--help"]])
def test_help_imports_no_torch(argv):
    """``uapfp --help`` and ``uapfp verify --help`` answer without importing torch (seconds faster)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "uapfp", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "usage: uapfp" in proc.stdout
    modules = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert modules and not [m for m in modules if m.split(".")[0] == "torch"], [m for m in modules if "torch" in m][:5]
