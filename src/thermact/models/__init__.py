"""Network backbones, heads and pretrained-weight loading."""
