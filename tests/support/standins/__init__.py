"""Stand-in docker, kind, kubectl and helm, and the harness running the cluster scripts."""
