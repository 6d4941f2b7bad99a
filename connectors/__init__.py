"""Channel connectors: the contract in `base`, one folder per channel."""
