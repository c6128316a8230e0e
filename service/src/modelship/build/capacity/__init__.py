"""Capacity: what one replica, confined as a container is, serves at a latency target."""
