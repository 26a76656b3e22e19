"""Data sets (download, parse), tokenizers, and the batches the engine iterates.

``attnlab data fetch NAME`` calls ``attnlab.data.<name>.fetch(dest: Path) -> Path`` for the
data sets of :data:`DATASETS`.
"""

from attnlab.registry import Registry

DATASETS = Registry("data set", "attnlab.data", {
    "imdb": "IMDB movie reviews (sentiment, 50k reviews)",
    "cifar10": "CIFAR-10 images (60k 32x32, 10 classes)",
    "shakespeare": "Tiny Shakespeare (1 MB of plays; ships with attnlab: copied, no download)",
    "glove": "GloVe 6B 50-d word vectors (862 MB zip; --vocab-size N keeps the N most frequent words)",
    "tatoeba": "Tatoeba English-French sentence pairs from manythings.org (fra-eng.zip, CC BY 2.0)",
})
