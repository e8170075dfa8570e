"""The chance baseline of `joins found` for a finished `dwz evaluate --concat` report: for each model, how many
mid-clip points (where no join is) have a segment boundary within 1 s, from the hypotheses' segments and joins.

    python scripts/long_form_chance.py results/long-form
"""

import json
import sys
from pathlib import Path

from distil_whisper_zh.longform import JOINS_FIELD, SEGMENTS_FIELD, boundaries_near, midpoints


def chance(report_dir: Path) -> dict[str, dict[str, int]]:
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    counts = {}
    for result in report["results"]:
        folder = report_dir / "hypotheses" if (report_dir / "hypotheses").is_dir() else report_dir
        rows = [json.loads(line) for line in (folder / result["hypotheses_file"]).read_text("utf-8").splitlines()]
        joins = found = decoys = 0
        for row in rows:
            boundaries = [t for segment in row[SEGMENTS_FIELD] for t in segment]
            joins += len(row[JOINS_FIELD])
            found += boundaries_near(row[JOINS_FIELD], boundaries)
            decoys += boundaries_near(midpoints([0.0, *row[JOINS_FIELD]]), boundaries)
        counts[result["model"]] = {"joins": joins, "joins_found": found, "decoys_found": decoys}
    return counts


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    print(json.dumps(chance(Path(sys.argv[1])), indent=2))
