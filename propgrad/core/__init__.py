"""The base layer: input checks, the forward pass, images and colour, files, cache, progress,
plotting primitives and the HTML page builder."""
