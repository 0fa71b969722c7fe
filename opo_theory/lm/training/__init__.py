"""The training loop: settings, SFT warm-up, rollouts, the update and its record, run directories."""
