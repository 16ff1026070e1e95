"""The e2gan Kubernetes operator (kopf): ConceptAdapter and ConceptBase resources → KubeRay RayJobs → catalog.

Never imports torch, diffusers, peft or ray: the operator image stays small.
"""
