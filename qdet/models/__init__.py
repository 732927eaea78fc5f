"""Models: backbone registry by torchvision name (with or without FPN) and detector assembly."""
