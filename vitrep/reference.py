"""The paper's own reconstruction loop, written as its snippet shows: the plain reference.

``NewVit`` is the paper's module (``_process_input``, prepend the class token,
loop over ``encoder.layers``; no positional embedding), and ``paper_loop`` its
gradient descent: parameters left trainable (their gradients are computed
and accumulate), ``torchvision``'s ``gaussian_blur`` every step.  The
benchmark times it against the engine, and the tests check that every fast
path of the engine reproduces it numerically.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur


class NewVit(nn.Module):
    """The paper's snippet: the output of encoder ``layer`` without the positional embedding."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        x = self.model._process_input(x)
        n = x.shape[0]
        batch_class_token = self.model.class_token.expand(n, -1, -1)
        x = torch.cat([batch_class_token, x], dim=1)
        for i in range(layer):
            x = self.model.encoder.layers[i](x)
        return x


class NewResNet(nn.Module):
    """The same idea for ResNet-50: the output of stage ``layer`` (1-4)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        for i in range(1, layer + 1):
            x = getattr(m, f"layer{i}")(x)
        return x


def paper_loop(net: nn.Module, layer: int, image: torch.Tensor, init: torch.Tensor, steps: int,
              lr_start: float = 1.0, lr_end: float = 0.05, blur_start: float = 2.4, blur_end: float = 0.4,
              scale: float = 0.05) -> torch.Tensor:
    """The paper's loop; returns the final input.  ``net`` keeps its parameters trainable, as the paper did."""
    target = net(image, layer).detach()
    a = init.clone()
    for i in range(steps):
        a = a.detach()
        a.requires_grad = True
        output = net(a, layer)
        loss = scale * torch.sum(torch.abs(target - output))
        loss.backward()
        t = i / (steps - 1) if steps > 1 else 0.0
        lr = lr_start + (lr_end - lr_start) * t
        sigma = blur_start + (blur_end - blur_start) * t
        a = a.detach() - lr * a.grad
        a = gaussian_blur(a, [3, 3], [sigma, sigma])
    return a.detach()
