"""CUDA mapped to the CPU (grader.cuda_on_cpu), in a fresh interpreter as a contestant would install it."""

import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

SCRIPT = textwrap.dedent("""
    import torch, torch.nn as nn
    from grader import cuda_on_cpu

    assert cuda_on_cpu.available() and not cuda_on_cpu.installed()
    try:
        torch.zeros(1).cuda()
        raise SystemExit("CUDA worked before the mapping")
    except RuntimeError as exc:
        assert cuda_on_cpu.asks_for_cuda(exc), exc
    cuda_on_cpu.install()
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).cuda().to(device).to("cuda:0")
    x = torch.randn(64, 2).cuda(non_blocking=True)
    y = torch.zeros(64, 1, device="cuda") + x.sum(dim=1, keepdim=True).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = None
    for _ in range(50):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        first = first or loss.item()
    torch.cuda.synchronize()
    torch.save({"net": model.state_dict()}, "ckpt.pth")
    back = torch.load("ckpt.pth", map_location="cuda", weights_only=True)
    assert all(t.device.type == "cpu" for t in back["net"].values())
    print(torch.cuda.get_device_name(0), model[0].weight.device, loss.item() < first)
""")


def test_cuda_requests_run_on_the_cpu_once_installed(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "cpu (no GPU on the grading machine) cpu True"
