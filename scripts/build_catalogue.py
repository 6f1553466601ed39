"""Regenerate golive/data/catalogue.json from the requirements catalogue (requirements.md).

The catalogue is data the tool ships so that a profile's requirement ids can be validated
and every report can quote the seed document a requirement comes from, without the design
folder at run time.  Usage: python scripts/build_catalogue.py ../shared/design/requirements.md
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

SEEDS = {
    "DS": "000_2a43e30ba53bd9eb.txt",
    "AW": "001_d940245515fc03a2.txt",
    "VO": "002_cd0bedb8d1661603.txt",
    "ST": "003_7a1be006e37992ec.txt",
    "OZ": "004_37a6818de433c15c.txt",
}
SYSTEM_NAMES = {
    "DS": "DocuSnap-Backend",
    "AW": "ALwrity / AI-Writer",
    "VO": "Vocabulo ML",
    "ST": "STRV Similarity Search",
    "OZ": "Oz Forensics API",
}
ROW = re.compile(r"^\|\s*([A-Z]{2,3}(?:-[A-Z0-9]+)+)\s*\|")


def parse(text: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        m = ROW.match(line)
        if not m:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6:
            continue
        rid, sys_, tier, check, probe = cells[:5]
        quote = "|".join(cells[5:]).strip()
        systems = [s.strip() for s in sys_.split(",")]
        seeds = [SEEDS[s] for s in systems if s in SEEDS]
        out[rid] = {
            "id": rid,
            "section": section,
            "systems": [SYSTEM_NAMES.get(s, s) for s in systems],
            "tier": tier,
            "check": check,
            "probe": probe,
            "quote": quote.strip('"').strip("“”"),
            "seeds": seeds,
        }
    return out


def main(argv: list[str]) -> int:
    src = Path(argv[1] if len(argv) > 1 else "../shared/design/requirements.md")
    data = parse(src.read_text(encoding="utf-8"))
    dst = Path(__file__).resolve().parent.parent / "golive" / "data" / "catalogue.json"
    dst.write_text(json.dumps({"source": "requirements.md", "requirements": data}, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(data)} requirements -> {dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
