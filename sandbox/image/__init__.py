"""The sandbox image's recipe (Dockerfile), shipped as package data so `optforge sandbox build`
works from an installed wheel. The runtime contract it implements is in ../docker_image.py."""
