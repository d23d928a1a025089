"""What OpenMP's wait policy costs a contestant that shares the cores: ten ResNet20 training steps (batch 64,
2 torch threads) on idle cores and beside one busy core, at nice 0 and at the local sandbox's nice +10, with
OpenMP's default (spinning) waits and with OMP_WAIT_POLICY=PASSIVE (what every contestant now gets).

    .venv/bin/python bench/omp_wait.py [--steps 10]

Each cell is a fresh Python process (the policy is read when torch's OpenMP starts); the busy core is another
process spinning in a loop, as a batch's other judge does while it evaluates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STEPS = """
import sys, time, torch
sys.path.insert(0, {solution!r})
from exp2 import ResNet20
torch.set_num_threads(2)
torch.manual_seed(0)
model = ResNet20()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()

step()  # warm-up: first-call allocations and kernel choices
t = time.perf_counter()
for _ in range({steps}):
    step()
print(time.perf_counter() - t)
"""


def timed(policy: str | None, nice: int, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    code = STEPS.format(solution=str(ROOT / "examples" / "exp2" / "solution"), steps=steps)
    out = subprocess.run(["nice", "-n", str(nice), sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    rows = []
    for busy in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for nice in (0, 10):
                cell = {"busy_core": busy, "nice": nice}
                for policy in (None, "PASSIVE"):
                    cell[policy or "default"] = round(timed(policy, nice, args.steps), 2)
                rows.append(cell)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "steps": args.steps,
                      "seconds": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
