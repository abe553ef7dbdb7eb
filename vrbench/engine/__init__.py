"""The one training/evaluation loop every method plugs into."""
