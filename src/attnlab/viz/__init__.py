"""Visualisation: attention heatmaps and explanations."""
