"""The networks: ``nn.Module``s and the pure tensor functions around them. No files, no
training loops, no weights lookup (models/zoo.py holds that)."""


def count_parameters(model) -> int:
    """Trainable and frozen parameters of an ``nn.Module``, all together."""
    return sum(p.numel() for p in model.parameters())
