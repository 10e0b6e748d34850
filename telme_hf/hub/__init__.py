"""The Hub: conversion of the authors' checkpoints, the model card, the Space export, and the upload of a checkpoint.

May import `telme_hf.modeling`, `telme_hf.data`, `telme_hf.inference` and `telme_hf.preprocessing`.
"""
