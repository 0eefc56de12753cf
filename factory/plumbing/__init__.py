"""What factory needs from the operating system: files written atomically and hashed, HTTP,
podman, child processes. Nothing here knows about builds, queues or indexes."""
