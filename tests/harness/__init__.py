"""Test harness: stand-ins for the services the operator talks to (the Kubernetes API)."""
