"""`python -m knn` on real photos, and on each kind of bad input: one clear line, exit code 2,
nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from knn.cli import main
from knn.core.image_folders import natural_key
from knn.core.images import read_image
from knn.core.project import load_project
from tests.conftest import class_files

ROOT = Path(__file__).resolve().parents[1]
PER_CLASS = 6


def run(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "knn", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def error_line(result: subprocess.CompletedProcess) -> str:
    """The CLI's own error line (native libraries may print their own start-up lines around it)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("python -m knn")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def folders(rps_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """A small teach folder (6 photos per class) and held-out photos from the far end of each class."""
    root = tmp_path_factory.mktemp("cli")
    teach, held_out = root / "teach", root / "held_out"
    for name, files in class_files(rps_dir).items():
        (teach / name).mkdir(parents=True)
        for f in files[: 6 * PER_CLASS : 6]:
            shutil.copy(f, teach / name / f.name)
        held_out.mkdir(exist_ok=True)
        for f in files[-3:]:
            shutil.copy(f, held_out / f.name)
    return {"teach": teach, "held_out": held_out, "root": root}


@pytest.fixture(scope="module")
def project(folders) -> Path:
    out = folders["root"] / "rps.npz"
    result = run("teach", folders["teach"], "-o", out, "-k", "3")
    assert result.returncode == 0, result.stderr
    assert f"taught 3 classes from {3 * PER_CLASS} images" in result.stdout
    assert "leave-one-out accuracy" in result.stdout
    return out


def test_help_on_every_command(capsys):
    assert "predict" in run("--help").stdout  # through __main__
    for command in ([], ["predict"], ["teach"], ["evaluate"], ["export"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: python -m knn {' '.join(command)}".strip() in capsys.readouterr().out


def test_teach_stores_every_photo_with_its_image(project):
    clf = load_project(project)
    assert clf.classes == ["paper", "rock", "scissors"]
    assert clf.counts() == {"paper": PER_CLASS, "rock": PER_CLASS, "scissors": PER_CLASS}
    assert all(example.image[:2] == b"\xff\xd8" for example in clf.examples())


def test_predict_matches_the_engine(project, folders, embedder):
    single = sorted(folders["held_out"].iterdir())[0]
    result = run("predict", project, single, folders["held_out"])
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    files = [single, *sorted(folders["held_out"].iterdir(), key=natural_key)]
    assert [Path(line[0]) for line in lines] == files
    clf = load_project(project)
    for (_path, label, confidence), f in zip(lines, files, strict=True):
        pred = clf.predict(embedder.embed_one(read_image(f)))
        assert label == pred.label and float(confidence) == pytest.approx(pred.confidences[label], abs=1e-3)
        assert label == f.name.split("_")[0]  # the held-out photos are easy: all right


def test_evaluate_project_and_folder(project, folders):
    result = run("evaluate", project)
    assert result.returncode == 0, result.stderr
    assert f"on {3 * PER_CLASS} examples (k=3, mobilenet_v" in result.stdout
    assert "| paper | 6 |" in result.stdout

    result = run("evaluate", folders["teach"], "--shots", "1", "3")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0:2] for row in rows] == [["| 1", "9"], ["| 3", "9"]]  # 3 queries × 3 classes
    assert "ours (k=3, similarity-weighted)" in result.stdout and "nearest neighbor" in result.stdout


def test_evaluate_compares_configurations_on_several_folders(folders, tmp_path):
    """Two folders' classes together, every configuration with weights here beside the TF.js rule."""
    more = tmp_path / "more" / "fist"
    more.mkdir(parents=True)
    for f in sorted((folders["teach"] / "rock").iterdir()):
        shutil.copy(f, more / f.name)
    result = run("-q", "evaluate", folders["teach"], tmp_path / "more", "--shots", "1", "--compare")
    assert result.returncode == 0, result.stderr
    assert "(4 classes)" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| mobilenet")]
    assert "TF.js knn-classifier rule" in rows[0]
    configurations = {tuple(cell.strip() for cell in row.split("|")[1:4]) for row in rows[1:]}
    assert {("mobilenet_v1_1.0", "224", "no"), ("mobilenet_v1_1.0", "320", "yes")} <= configurations
    assert len(configurations) in (4, 8)  # v1, and MobileNetV2 where ../shared/models has it


def test_evaluate_on_a_turntable_arc(coil_dir, tmp_path):
    root = tmp_path / "coil"
    root.mkdir()
    for name in ("obj1", "obj2", "obj3"):
        (root / name).symlink_to(coil_dir / name)
    result = run("evaluate", root, "--split", "arc", "--shots", "1", "5", "--max-queries", "6")
    assert result.returncode == 0, result.stderr
    assert "a sixth of each turntable" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0:2] for row in rows] == [["| 1", "18"], ["| 5", "18"]]


def test_export_command_writes_a_model_with_its_labels(project, tmp_path):
    out = tmp_path / "rps.keras"
    result = run("export", project, "-o", out)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    assert zipfile.ZipFile(out).read("labels.txt").decode().splitlines() == ["paper", "rock", "scissors"]
    assert [p.name for p in tmp_path.iterdir()] == ["rps.keras"]


# --- bad input ----------------------------------------------------------------------------------


@pytest.fixture()
def bad_project(tmp_path, project) -> dict[str, Path]:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a project file")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(project.read_bytes()[: project.stat().st_size // 2])
    return {"garbage": garbage, "truncated": truncated}


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_a_bad_project_file(bad_project, folders, tmp_path, command, kind):
    extra = {"predict": [folders["held_out"]], "evaluate": [], "export": ["-o", tmp_path / "m.keras"]}[command]
    result = run(command, bad_project[kind], *extra)
    assert result.returncode == 2
    assert "damaged" in error_line(result) or "not a project file" in error_line(result)
    assert result.stdout == ""
    assert not (tmp_path / "m.keras").exists()


def test_missing_files(project, folders, tmp_path):
    result = run("predict", tmp_path / "nope.npz", folders["held_out"])
    assert result.returncode == 2 and "nope.npz: no such project file" in error_line(result)
    result = run("predict", project, tmp_path / "nope.jpg")
    assert result.returncode == 2 and "nope.jpg: no such file or folder" in error_line(result)
    assert result.stdout == ""
    result = run("teach", tmp_path / "nowhere", "-o", tmp_path / "p.npz")
    assert result.returncode == 2 and "no such folder" in error_line(result)
    result = run("teach", folders["teach"], "-o", tmp_path / "missing_dir" / "p.npz")
    assert result.returncode == 2 and "does not exist" in error_line(result)
    result = run("evaluate", tmp_path / "nope.npz")
    assert result.returncode == 2 and "no such project file" in error_line(result)


def test_predict_reports_non_images_and_answers_the_rest(project, folders, tmp_path):
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a picture")
    good = sorted(folders["held_out"].iterdir())[0]
    result = run("predict", project, fake, good)
    assert result.returncode == 2
    assert "fake.jpg is not an image" in result.stderr
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [str(good)]


def test_teach_skips_a_non_image_with_a_warning_or_refuses_it_with_strict(folders, tmp_path):
    teach = tmp_path / "teach"
    shutil.copytree(folders["teach"], teach)
    (teach / "rock" / "notes.jpg").write_text("not a picture")
    result = run("teach", teach, "-o", tmp_path / "ok.npz")
    assert result.returncode == 0, result.stderr
    assert "warning: skipping" in result.stderr and "notes.jpg" in result.stderr
    assert load_project(tmp_path / "ok.npz").counts()["rock"] == PER_CLASS

    result = run("teach", teach, "-o", tmp_path / "strict.npz", "--strict")
    assert result.returncode == 2 and "notes.jpg is not an image" in error_line(result)
    assert not (tmp_path / "strict.npz").exists()


def test_teach_fails_when_a_class_has_no_readable_image(folders, tmp_path):
    teach = tmp_path / "teach"
    shutil.copytree(folders["teach"], teach)
    (teach / "blank").mkdir()
    (teach / "blank" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    out.mkdir()
    result = run("teach", teach, "-o", out / "p.npz")
    assert result.returncode == 2 and "no readable image" in error_line(result) and "blank" in error_line(result)
    assert list(out.iterdir()) == []  # nothing half-written, no temporary file


def test_folder_without_class_subfolders(folders, tmp_path):
    result = run("teach", folders["held_out"], "-o", tmp_path / "p.npz")
    assert result.returncode == 2 and "no class subfolders" in error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_bad_usage(project, folders, tmp_path):
    for args in (
        ["fly"],
        ["predict", project, folders["held_out"], "--nope"],
        ["teach", folders["teach"]],
        ["teach", folders["teach"], "-o", tmp_path / "p.npz", "-k", "0"],
        [],
    ):
        result = run(*args)
        assert result.returncode == 2, args
        assert "usage: python -m knn" in result.stderr
    result = run("export", project, "-o", tmp_path / "model.onnx")
    assert result.returncode == 2 and ".keras or a .tflite" in error_line(result)
    result = run("evaluate", project, "--shots", "1")
    assert result.returncode == 2 and "apply to folders of class subfolders" in error_line(result)
    result = run("evaluate", folders["teach"], "--shots", "4")
    assert result.returncode == 2 and "needs at least 8 images" in error_line(result)
    assert list(tmp_path.iterdir()) == []


def _project_with(tmp_path: Path, backbone: str, dim: int) -> Path:
    from knn.core.classifier import KNNClassifier
    from knn.core.project import save_project

    clf = KNNClassifier()
    clf.add(np.ones(dim, np.float32), "a")
    path = tmp_path / f"{backbone}-{dim}.npz"
    save_project(path, clf, backbone)
    return path


def test_a_project_of_an_unknown_backbone_or_the_wrong_width_is_bad_input(folders, tmp_path):
    result = run("predict", _project_with(tmp_path, "mobilenet_v9_1.0_224", 1024), folders["held_out"])
    assert result.returncode == 2 and "does not know" in error_line(result)
    result = run("predict", _project_with(tmp_path, "mobilenet_v1_1.0_224", 512), folders["held_out"])
    assert result.returncode == 2 and "512-value embeddings" in error_line(result)
    assert result.stdout == ""


MODEL_LOADED = "XNNPACK"
"""What LiteRT prints when the model loads; KNN_DEBUG=1 lets native start-up lines through."""


def test_the_model_loaded_line_shows_when_it_loads(folders, tmp_path):
    result = run("teach", folders["teach"], "-o", tmp_path / "p.npz", env={"KNN_DEBUG": "1"})
    assert result.returncode == 0 and MODEL_LOADED in result.stderr


def test_a_folder_whose_name_is_not_utf8_is_refused_before_any_embedding(folders, tmp_path):
    root = tmp_path / "teach"
    shutil.copytree(folders["teach"], root)
    os.rename(root / "rock", os.path.join(os.fsencode(root), b"rock\xff"))
    result = run("teach", root, "-o", tmp_path / "p.npz", env={"KNN_DEBUG": "1"})
    assert result.returncode == 2
    line = error_line(result)
    assert "cannot be a class name" in line and "valid Unicode" in line
    assert MODEL_LOADED not in result.stderr  # refused before the model loaded
    assert not (tmp_path / "p.npz").exists()


def test_an_output_folder_that_cannot_be_written_is_found_before_any_embedding(folders):
    """/proc takes no new files, even from root: a stand-in for a read-only disk."""
    result = run("teach", folders["teach"], "-o", "/proc/p.npz", env={"KNN_DEBUG": "1"})
    assert result.returncode == 2
    assert "cannot write /proc/p.npz" in error_line(result)
    assert MODEL_LOADED not in result.stderr


def test_too_many_images_for_a_project_say_how_to_take_fewer(folders, tmp_path, monkeypatch):
    result = run("teach", folders["teach"], "-o", tmp_path / "p.npz", "--max-per-class", "2")
    assert result.returncode == 0, result.stderr
    assert "taught 3 classes from 6 images" in result.stdout
    assert load_project(tmp_path / "p.npz").counts() == {"paper": 2, "rock": 2, "scissors": 2}
