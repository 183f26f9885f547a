"""Fixtures for the agent tests: a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import pytest
from archlore.agent.llm.local_server import ScriptedServer
from archlore.agent.llm.openai_backend import OpenAIModel

PARENT = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.conv2(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)
'''


@pytest.fixture
def server():
    srv = ScriptedServer(model="test-model").start()
    yield srv
    srv.stop()


@pytest.fixture
def make_model(server):
    def make(**overrides) -> OpenAIModel:
        cfg = dict(base_url=server.base_url, api_key="test-key", model="test-model",
                   timeout_s=5.0, max_retries=3, backoff_initial_s=0.01)
        cfg.update(overrides)
        return OpenAIModel(**cfg)

    return make
