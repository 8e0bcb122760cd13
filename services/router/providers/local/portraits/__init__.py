"""The local portrait model (the local provider, `local/provider.py`, runs it for a provider that declares
`capabilities.identity`): faces.py (a subject's face crops, the local weights, the donor
faces), scene.py (a style's backdrop, wardrobe, light and framing), defects.py (the defects
it plants), painter.py (one portrait).

Its modules besides those named above:
    products.py       a product subject, as the local portrait model paints it
"""
