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


def test_errors_are_split_between_clips_with_a_number_and_the_others(tmp_path):
    refs = ["设定三十度", "调高温度", "一三三零七八"]
    _write_report(
        tmp_path,
        {
            "teacher": [(refs[0], "设定30度"), (refs[1], "调高温"), (refs[2], "一三三零七八")],  # 30 is 三十: no error
            "student": [(refs[0], "设定30十度"), (refs[1], "调高"), (refs[2], "一三三三零七八")],
        },
    )
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert "dev: 2 clips with a number (11 characters), 1 without (4 characters)" in lines
    assert "| teacher | 0 (-; S/D/I 0 / 0 / 0) | 1 (1.00x; S/D/I 0 / 1 / 0) |" in lines
    assert "| student | 2 (-; S/D/I 0 / 0 / 2) | 2 (2.00x; S/D/I 0 / 2 / 0) |" in lines
