"""The thermal data layer: recordings, annotations, clips, transforms and splits."""
