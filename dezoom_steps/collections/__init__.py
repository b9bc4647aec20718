"""Inputs that name several images: bulk lists of URLs, IIIF manifests."""
