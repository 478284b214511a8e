import os

# torch.compile makes tiny-model tests ~5x slower and is not what they check.
os.environ.setdefault("NO_TORCH_COMPILE", "1")
# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
