"""Training: the base generator (Ray Train), crucial-layer LoRA (peft), rank search (Ray Tune)."""
