"""Files `grader release exp2` generates besides the stub (paths relative to the course root)."""

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def generated_files() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("exp2_reference", HERE / "exp2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = {k: list(v.shape) for k, v in module.ResNet20().state_dict().items()}
    return {"assignments/exp2/checks/reference_state_dict.json": json.dumps(state, indent=1) + "\n"}
