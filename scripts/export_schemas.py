"""Write the JSON Schemas of profiles, targets, waiver and attestation files to docs/schema/.

Editors (VS Code YAML, JetBrains) validate files against them as you type:
    # yaml-language-server: $schema=../docs/schema/profile.schema.json
The profile and target schemas include every registered family's fragment
(checks/<family>/family.py).  Run after changing a model (golive/profile.py, target.py,
waivers.py, attestations.py, units.py) or a family's fragments; tests/test_core.py checks
that the committed files are current, and tests/test_schemas.py validates every shipped
profile, target, waiver and attestation file against them with jsonschema.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from golive.attestations import AttestationFile
from golive.profile import profile_model
from golive.target import target_model
from golive.waivers import WaiverFile

SCHEMAS = {"profile": profile_model(), "target": target_model(), "waivers": WaiverFile,
           "attestations": AttestationFile}


def render() -> dict[str, str]:
    out = {}
    for name, model in SCHEMAS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"golive {name} file"
        out[name] = json.dumps(schema, indent=1, sort_keys=True) + "\n"
    return out


def main() -> int:
    folder = ROOT / "docs" / "schema"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (folder / f"{name}.schema.json").write_text(text)
        print(f"docs/schema/{name}.schema.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
