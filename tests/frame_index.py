"""Frames that show their own index, so a test can read back which frames a decoder picked."""

from __future__ import annotations

import numpy as np


WIDTH, HEIGHT = 64, 48
INDEX_BITS = 8  # frame index written as 8 black/white vertical stripes: survives any lossy codec


def indexed_frames(num_frames: int) -> np.ndarray:
    """Frame i shows i in binary, most significant bit on the left, one 8-px stripe per bit."""
    frames = np.zeros((num_frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    stripe = WIDTH // INDEX_BITS
    for i in range(num_frames):
        for bit in range(INDEX_BITS):
            if (i >> (INDEX_BITS - 1 - bit)) & 1:
                frames[i, :, bit * stripe : (bit + 1) * stripe] = 255
    return frames


def read_indices(video: np.ndarray) -> list[int]:
    """Inverse of `indexed_frames` for decoded `(n, H, W, 3)` frames (any width: stripes scale with it)."""
    stripe = video.shape[2] / INDEX_BITS
    indices = []
    for frame in video:
        # Sample the middle of each stripe, away from edges blurred by chroma subsampling and resizing.
        bits = [frame[:, int((b + 0.5) * stripe)].mean() > 127 for b in range(INDEX_BITS)]
        indices.append(int("".join("1" if b else "0" for b in bits), 2))
    return indices
