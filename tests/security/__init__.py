"""Reproductions of hostile model output and hostile tool content: each must stay harmless."""
