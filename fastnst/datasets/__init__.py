"""Building training data: film frames into style sets, FiftyOne datasets, style reports.

Frame extraction and hashing need only the core dependencies (PyAV, NumPy, Pillow);
the FiftyOne helpers import FiftyOne lazily, so nothing here pulls it onto the inference path.
"""
