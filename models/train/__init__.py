"""Training recipes: one time-budgeted loop with checkpoints and one learning-rate
schedule (loop.py), the data samplers (samplers.py), one recipe per network, and the
``ncodec train`` drivers that load photos and write weights through the zoo (drivers.py)."""
