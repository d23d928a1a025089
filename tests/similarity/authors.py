"""Three students who solve exp2's TODOs independently, each in their own way (the fourth, A, is the reference
solution). Each author is a list of ten fills, one per `raise NotImplementedError` of the released stub, in
order: BasicBlock.__init__, BasicBlock.forward, ResNet20.__init__, ResNet20._stage, ResNet20.forward,
lr_for_epoch, train_step, evaluate, save_checkpoint, resume. All keep the reference's state_dict keys, as the
architecture check demands, so any likeness between them is the assignment's, not a copy's."""

from __future__ import annotations

import re
import textwrap

B = [
    """
    self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
    self.bn1 = nn.BatchNorm2d(c_out)
    self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False)
    self.bn2 = nn.BatchNorm2d(c_out)
    needs_projection = stride > 1 or c_in != c_out
    projection = [nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(c_out)]
    self.shortcut = nn.Sequential(*projection) if needs_projection else nn.Sequential()
    """,
    """
    identity = self.shortcut(x)
    y = torch.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    y += identity
    return torch.relu(y)
    """,
    """
    self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
    self.bn1 = nn.BatchNorm2d(16)
    widths = [16, 32, 64]
    self.layer1 = self._stage(16, widths[0], 1)
    self.layer2 = self._stage(widths[0], widths[1], 2)
    self.layer3 = self._stage(widths[1], widths[2], 2)
    self.linear = nn.Linear(widths[-1], num_classes)
    """,
    """
    blocks = []
    for i in range(3):
        blocks.append(BasicBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1))
    return nn.Sequential(*blocks)
    """,
    """
    h = torch.relu(self.bn1(self.conv1(x)))
    for stage in (self.layer1, self.layer2, self.layer3):
        h = stage(h)
    h = F.adaptive_avg_pool2d(h, 1).flatten(1)  # (N, 64)
    return self.linear(h)
    """,
    """
    if epoch >= 5:
        return 0.01
    return 0.1
    """,
    """
    model.train()
    scores = model(x)
    loss = nn.CrossEntropyLoss()(scores, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    n_correct = int((scores.argmax(1) == y).sum())
    return float(loss), n_correct
    """,
    """
    model.eval()
    hits, total = 0, 0
    with torch.no_grad():
        for images, labels in batches(x, y, batch_size):
            images, labels = images.to(device), labels.to(device)
            guesses = model(images).argmax(dim=1)
            hits += (guesses == labels).sum().item()
            total += labels.numel()
    return hits / total * 100
    """,
    """
    checkpoint = {"net": model.state_dict(), "epoch": epoch, "history": history}
    torch.save(checkpoint, path)
    """,
    """
    data = torch.load(path, weights_only=True)
    model.load_state_dict(data["net"])
    next_epoch = data["epoch"]
    for g in optimizer.param_groups:
        g["lr"] = lr_for_epoch(next_epoch)
    hist = data["history"]
    return next_epoch, {key: list(hist[key]) for key in ("train_loss", "train_acc", "test_acc")}
    """,
]

C = [
    """
    super_args = dict(kernel_size=3, padding=1, bias=False)
    self.conv1 = nn.Conv2d(c_in, c_out, stride=stride, **super_args)
    self.conv2 = nn.Conv2d(c_out, c_out, stride=1, **super_args)
    self.bn1, self.bn2 = nn.BatchNorm2d(c_out), nn.BatchNorm2d(c_out)
    layers = []
    if stride != 1 or c_in != c_out:
        layers = [nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)]
    self.shortcut = nn.Sequential(*layers)
    """,
    """
    residual = x
    x = F.relu(self.bn1(self.conv1(x)))
    x = self.bn2(self.conv2(x))
    return F.relu(x + self.shortcut(residual))
    """,
    """
    self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(16)
    stages = [(16, 16, 1), (16, 32, 2), (32, 64, 2)]
    for number, (a, b, s) in enumerate(stages, start=1):
        setattr(self, f"layer{number}", self._stage(a, b, s))
    self.linear = nn.Linear(64, num_classes)
    """,
    """
    strides = [stride, 1, 1]
    channels_in = [c_in, c_out, c_out]
    return nn.Sequential(*[BasicBlock(ci, c_out, s) for ci, s in zip(channels_in, strides)])
    """,
    """
    out = self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))
    out = torch.mean(out, dim=[2, 3])
    return self.linear(out)
    """,
    """
    return [0.1, 0.01][int(epoch >= 5)]
    """,
    """
    model.train(True)
    for p in model.parameters():
        p.grad = None
    output = model(x)
    batch_loss = F.cross_entropy(output, y, reduction="mean")
    batch_loss.backward()
    optimizer.step()
    right = (output.detach().max(dim=1).indices == y).long().sum()
    return batch_loss.detach().item(), right.item()
    """,
    """
    model.train(False)
    right = 0
    with torch.inference_mode():
        for inputs, targets in batches(x, y, batch_size):
            logits = model(inputs.to(device))
            right += int(logits.argmax(-1).eq(targets.to(device)).sum())
    return 100.0 * right / x.shape[0]
    """,
    """
    torch.save(dict(net=model.state_dict(), epoch=epoch, history=history), path)
    """,
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(saved["net"])
    set_lr(optimizer, lr_for_epoch(saved["epoch"]))
    past = {name: [float(v) for v in values] for name, values in saved["history"].items()}
    return int(saved["epoch"]), past
    """,
]

D = [
    """
    self.conv1 = nn.Conv2d(in_channels=c_in, out_channels=c_out, kernel_size=(3, 3), stride=(stride, stride),
                           padding=(1, 1), bias=False)
    self.bn1 = nn.BatchNorm2d(num_features=c_out)
    self.conv2 = nn.Conv2d(in_channels=c_out, out_channels=c_out, kernel_size=(3, 3), padding=(1, 1), bias=False)
    self.bn2 = nn.BatchNorm2d(num_features=c_out)
    self.shortcut = nn.Sequential()
    if (c_in, stride) != (c_out, 1):
        self.shortcut.add_module("0", nn.Conv2d(c_in, c_out, kernel_size=(1, 1), stride=(stride, stride), bias=False))
        self.shortcut.add_module("1", nn.BatchNorm2d(num_features=c_out))
    """,
    """
    main = self.conv1(x)
    main = self.bn1(main)
    main = F.relu(main)
    main = self.conv2(main)
    main = self.bn2(main)
    skip = self.shortcut(x)
    return F.relu(main + skip)
    """,
    """
    self.conv1 = nn.Conv2d(in_channels=3, out_channels=16, kernel_size=(3, 3), padding=(1, 1), bias=False)
    self.bn1 = nn.BatchNorm2d(num_features=16)
    self.layer1 = ResNet20._stage(c_in=16, c_out=16, stride=1)
    self.layer2 = ResNet20._stage(c_in=16, c_out=32, stride=2)
    self.layer3 = ResNet20._stage(c_in=32, c_out=64, stride=2)
    self.linear = nn.Linear(in_features=64, out_features=num_classes)
    """,
    """
    first = BasicBlock(c_in, c_out, stride=stride)
    second = BasicBlock(c_out, c_out, stride=1)
    third = BasicBlock(c_out, c_out, stride=1)
    return nn.Sequential(first, second, third)
    """,
    """
    features = F.relu(self.bn1(self.conv1(x)))
    features = self.layer1(features)
    features = self.layer2(features)
    features = self.layer3(features)
    pooled = F.avg_pool2d(features, kernel_size=features.shape[-1])
    return self.linear(pooled.view(pooled.size(0), -1))
    """,
    """
    lr = 0.1
    if epoch > 4:
        lr = lr / 10
    return lr
    """,
    """
    criterion = nn.CrossEntropyLoss()
    model.train()
    optimizer.zero_grad(set_to_none=True)
    predictions = model(x)
    value = criterion(predictions, y)
    value.backward()
    optimizer.step()
    _, predicted_labels = torch.max(predictions, 1)
    return value.item(), predicted_labels.eq(y).sum().item()
    """,
    """
    model.eval()
    total_correct = 0
    torch.set_grad_enabled(False)
    try:
        for batch_images, batch_labels in batches(x, y, batch_size):
            out = model(batch_images.to(device))
            total_correct += (torch.max(out, 1)[1] == batch_labels.to(device)).sum().item()
    finally:
        torch.set_grad_enabled(True)
    return total_correct * 100.0 / len(y)
    """,
    """
    state = {}
    state["net"] = model.state_dict()
    state["epoch"] = epoch
    state["history"] = history
    with open(path, "wb") as handle:
        torch.save(state, handle)
    """,
    """
    with open(path, "rb") as handle:
        state = torch.load(handle, weights_only=True)
    model.load_state_dict(state["net"])
    epoch = state["epoch"]
    new_lr = lr_for_epoch(epoch)
    for group in optimizer.param_groups:
        group["lr"] = new_lr
    return epoch, dict(state["history"])
    """,
]

AUTHORS = {"B": B, "C": C, "D": D}
TODO = re.compile(r"^(?P<indent>[ \t]*)raise NotImplementedError\n", re.MULTILINE)


def fill(stub: str, fills: list[str]) -> str:
    """The stub with its n-th `raise NotImplementedError` replaced by the n-th fill, at that line's indent."""
    parts = iter(fills)

    def one(m: re.Match[str]) -> str:
        return textwrap.indent(textwrap.dedent(next(parts)).strip("\n") + "\n", m["indent"])

    out = TODO.sub(one, stub)
    if next(parts, None) is not None or "raise NotImplementedError" in out:
        raise ValueError("the fills do not match the stub's TODOs")
    return out
