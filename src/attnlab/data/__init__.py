"""Data sets (download, parse), tokenizers, and the batches the engine iterates.

``attnlab data fetch NAME`` calls ``attnlab.data.<name>.fetch(dest: Path) -> Path`` for the
data sets of :data:`DATASETS`.
"""

from attnlab.registry import Registry

DATASETS = Registry("data set", "attnlab.data", {
    "imdb": "IMDB movie reviews (sentiment, 50k reviews)",
    "cifar10": "CIFAR-10 images (60k 32x32, 10 classes)",
    "shakespeare": "Tiny Shakespeare (1 MB of plays; a copy ships with attnlab)",
})
