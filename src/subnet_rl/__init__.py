"""subnet-rl: measure, extract and retrain the sparse subnetworks that RL finetuning updates."""

__version__ = "0.1.0"
