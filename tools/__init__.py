"""Tools around the platform: local stand-ins for the outside world, the demo, the benchmark."""
