import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "scripts" / "number_clips.py"


def _write_report(folder: Path, models: dict[str, list[tuple[str, str]]]) -> None:
    results = []
    (folder / "hypotheses").mkdir(parents=True)
    for model, pairs in models.items():
        name = f"{model}__dev.jsonl"
        rows = [{"reference": ref, "hypothesis": hyp} for ref, hyp in pairs]
        (folder / "hypotheses" / name).write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
        results.append({"model": model, "dataset": "dev", "hypotheses_file": name})
    (folder / "report.json").write_text(json.dumps({"results": results}), "utf-8")


def test_errors_are_split_between_phone_numbers_other_numbers_and_the_rest(tmp_path):
    refs = ["设定三十度", "调高温度", "一三三零七八零七"]
    _write_report(
        tmp_path,
        {
            "teacher": [(refs[0], "设定30度"), (refs[1], "调高温"), (refs[2], "一三三零七八零七")],  # 30 is 三十
            "student": [(refs[0], "设定30十度"), (refs[1], "调高"), (refs[2], "一三三三零七八零七")],
        },
    )
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert "dev: 2 of 3 clips spell a number, 1 of them digit by digit (13 of 17 reference characters)" in lines
    none = "0 (-; S/D/I 0 / 0 / 0)"
    teacher = f"| teacher | 5.88% | 1 (1.00x; S/D/I 0 / 1 / 0) | {none} | {none} | 1 (1.00x; S/D/I 0 / 1 / 0) |"
    student = (
        "| student | 23.53% | 4 (4.00x; S/D/I 0 / 2 / 2) | 1 (-; S/D/I 0 / 0 / 1) | 1 (-; S/D/I 0 / 0 / 1) | "
        "2 (2.00x; S/D/I 0 / 2 / 0) |"
    )
    assert teacher in lines and student in lines


def test_an_unknown_dataset_is_named_with_those_the_report_has(tmp_path):
    _write_report(tmp_path, {"teacher": [("设定三十度", "设定30度")]})
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--dataset", "test"], capture_output=True, text=True
    )
    assert out.returncode == 1
    assert "has no dataset 'test'; it has dev" in out.stderr
