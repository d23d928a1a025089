"""The torch._dynamo stand-in: eager training never imports dynamo, and anything that needs more of it gets
the real module, in place. Each case runs in its own interpreter: the stand-in works only before dynamo loads."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

TRAIN = """
import io, sys, torch
from grader import deferred_dynamo
assert deferred_dynamo.install()
stand_in = sys.modules["torch._dynamo"]
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
x = torch.linspace(-1, 1, 32).unsqueeze(1)
for make in (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), torch.optim.Adam):
    opt = make(net.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, 2)
    for _ in range(3):
        loss = ((net(x) - x**2) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    opt.load_state_dict(opt.state_dict())
torch.onnx.export(net, (torch.zeros(1, 1),), io.BytesIO(), dynamo=False)
assert type(stand_in).__name__ == "_Deferred", "eager training imported dynamo"
assert not [m for m in sys.modules if m.startswith("torch._dynamo.")]
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_eager_training_and_export_never_import_dynamo():
    _run(TRAIN + "print('ok')")


@pytest.mark.parametrize(
    "then",
    [
        # torch.compile asks the module for more than the stand-in answers
        "out = torch.compile(net, backend='eager')(x); assert out.shape == (32, 1)",
        # a submodule the package imports itself: the same module object, not a second execution
        "from torch._dynamo.utils import dynamo_timed\nimport torch._dynamo.utils as u\n"
        "assert u.dynamo_timed is dynamo_timed and sys.modules['torch._dynamo.utils'] is u",
        "torch._dynamo.reset()",
        # torchvision.ops imports torch._dynamo.utils: every student who imports torchvision loads dynamo
        "import torchvision\nassert torchvision.ops.nms(torch.rand(3, 4) * 0, torch.rand(3), 0.5).numel() >= 1",
    ],
    ids=["compile", "submodule", "attribute", "torchvision"],
)
def test_the_stand_in_becomes_the_real_dynamo_in_place(then):
    _run(TRAIN + then + """
assert sys.modules["torch._dynamo"] is stand_in is torch._dynamo and type(stand_in).__name__ == "module"
assert callable(stand_in.optimize) and "torch._dynamo.eval_frame" in sys.modules
for _ in range(2):  # the optimizer's methods the stand-in wrapped now go through the real dynamo.disable
    loss = ((net(x) - x**2) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print('ok')
""")
