"""The paper's two-stage generator: stage 1 semantic layout (CNN + ViT), stage 2 texture."""
