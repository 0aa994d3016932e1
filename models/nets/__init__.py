"""The networks: ``nn.Module``s and the pure tensor functions around them. No files, no
training loops, no weights lookup (models/zoo.py holds that)."""
